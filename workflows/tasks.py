"""Thin tasks: take a primary key (or nothing, for beat), call one service."""

import logging

from celery import shared_task

from integrations.kuaidi100.services import subscriptions_due_for_poll
from workflows import alerts, bulk, delays, erp_bridge, exports, ghosts, notifications, reactions, sla, tracking
from workflows.health import douyin_feed

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def sla_sweep() -> int:
    """Idempotent (a breach is marked once under its row lock), so a redelivery is harmless."""
    return sla.sla_sweep().breached


@shared_task(acks_late=True)
def ghost_check() -> int:
    """Idempotent (one open ghost tag per order), so a redelivery or an overlap is harmless."""
    return ghosts.ghost_check().opened


# Named explicitly: orders/services.py sends it by this name (the ground floor cannot import it).
@shared_task(name="workflows.react_to_status_event", acks_late=True)
def react_to_status_event(event_id: int) -> str:
    return reactions.react_to_status_event(event_id=event_id)


@shared_task
def relay_reactions() -> int:
    return reactions.reactions_relay()


# The old name (integrations/mail/tasks.py) kept for one release, for messages already queued.
@shared_task(name="integrations.mail.tasks.send_alert_email", acks_late=True)
def email_alert(alert_id: int) -> int:
    """E-mail one alert now (the claim makes a redelivery harmless); the SLA sweep retries failures.
    The role's WeCom robot gets it in the same breath (batched with whatever else is new)."""
    alerts.alerts_robot_queue()
    return alerts.alerts_email_send(alert_ids=[alert_id])


# The old name (integrations/kuaidi100/tasks.py) kept for one release, for messages already queued.
@shared_task(name="integrations.kuaidi100.tasks.poll_shipment", acks_late=True)
def poll_shipment(subscription_id: int) -> str:
    return tracking.shipment_poll(subscription_id=subscription_id)


@shared_task
def poll_silent_shipments() -> int:
    pks = list(subscriptions_due_for_poll().values_list("pk", flat=True)[:200])
    for pk in pks:
        try:
            poll_shipment.apply_async(args=[pk], retry=False)
        except Exception:  # noqa: BLE001 - broker down: the next beat asks again
            logger.warning("broker unavailable; poll of subscription %s left to the next beat", pk)
            break
    return len(pks)


@shared_task
def watch_shipments() -> int:
    return tracking.shipments_watch_scan()


@shared_task(acks_late=True)
def reconcile_upload(run_id: int) -> None:
    """The ERP sync check of an uploaded file (the claim makes a redelivery harmless)."""
    erp_bridge.reconciliation_upload_execute(run_id=run_id)


@shared_task(acks_late=True)
def run_bulk_batch(batch_id: int) -> None:
    """A bulk action over many orders (the batch's claim and the per-order result rows make a
    redelivery harmless: it continues with the orders still waiting)."""
    bulk.batch_execute(batch_id=batch_id)


@shared_task
def resume_bulk_batches() -> int:
    pks = bulk.batches_resume()
    for pk in pks:
        run_bulk_batch.apply_async(args=[pk], retry=False)
    return len(pks)


@shared_task(acks_late=True)
def export_orders_xlsx(run_id: int) -> None:
    """An .xlsx export of a view (the claim makes a redelivery harmless)."""
    exports.export_execute(run_id=run_id)


@shared_task
def sms_fallback() -> int:
    return notifications.sms_fallback_scan()


@shared_task(acks_late=True)
def delays_scan() -> int:
    return delays.delays_scan()


@shared_task(acks_late=True)
def push_stage_delays(order_ids: list[int]) -> int:
    """The delay push of an SLA sweep's first breaches (once per stage entry: a redelivery, or the
    delays scan getting there first, pushes nothing twice)."""
    return delays.stage_breach_scan(order_ids=order_ids)


@shared_task
def douyin_feed_watch() -> int:
    """Idempotent (one alert per episode, by its dedupe key)."""
    return douyin_feed.feed_watch()
