import datetime
import smtplib

from celery import shared_task
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.mail.client import send_alert_email as send
from workflows.models import Alert


@shared_task(bind=True, acks_late=True, max_retries=5)
def send_alert_email(self, alert_id: int) -> None:
    """E-mail one alert at most once: the row is claimed (emailed_at set) before sending and
    released again when the mail server refused it, so a retry can send it."""
    now = timezone.now()
    if not Alert.objects.filter(pk=alert_id, emailed_at__isnull=True).update(emailed_at=now):
        return
    alert = Alert.objects.select_related("order").get(pk=alert_id)
    subject = f"[{_('Beile Order Cockpit')}] {alert.get_kind_display()}" + (f" {alert.order.order_number}" if alert.order else "")
    try:
        send(subject=subject, body=alert.message)
    except (OSError, smtplib.SMTPException) as exc:
        Alert.objects.filter(pk=alert_id).update(emailed_at=None)
        raise self.retry(exc=exc, countdown=int(datetime.timedelta(minutes=2 ** self.request.retries).total_seconds())) from exc
