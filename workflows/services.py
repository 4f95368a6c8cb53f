"""Writes of the supervisor's board that are not order writes: acknowledging an alert. (Order
writes — assigning, rush filing, stage rules — are in orders/services.py like every other.)"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from orders import live, rules
from orders.access import Actor
from orders.services import NotAllowed
from workflows.models import Alert


def alert_acknowledge(*, alert: Alert, by: Actor) -> Alert:
    """The supervisor has seen the breach: it stays red but leaves the list of open alerts."""
    if rules.SUPERVISOR not in by.roles and alert.for_role not in by.roles:
        raise NotAllowed(_("This alert is for another role."))
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.acknowledged_at is not None:
            return alert
        alert.acknowledged_by = by.user
        alert.acknowledged_at = timezone.now()
        alert.save(update_fields=["acknowledged_by", "acknowledged_at"])
        if alert.order_id:  # the board shows the acknowledgement on the order's card
            live.order_changed(alert.order_id)
    return alert
