"""The one alert → e-mail path (workflows/alerts.py): no mail is sent while alert rows are locked,
a failed send is retried and a sent one never again, and every kind of alert goes the same way."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection
from django.utils import timezone

from orders.access import Actor
from workflows import alerts, sla
from workflows.models import Alert
from workflows.services import alert_acknowledge
from workflows.tasks import email_alert

pytestmark = pytest.mark.django_db


class GatedBackend(BaseEmailBackend):
    """A mail server that answers only when the test lets it (a slow or hung SMTP server)."""

    entered = threading.Event()
    release = threading.Event()
    sent: list = []

    def send_messages(self, messages):
        GatedBackend.entered.set()
        GatedBackend.release.wait(timeout=30)
        GatedBackend.sent.extend(messages)
        return len(messages)


class RefusingOnceBackend(BaseEmailBackend):
    """Refuses the first send (the server is down), accepts the rest."""

    refusals_left = 1

    def send_messages(self, messages):
        if RefusingOnceBackend.refusals_left:
            RefusingOnceBackend.refusals_left -= 1
            raise ConnectionRefusedError("mail server down")
        mail.outbox.extend(messages)
        return len(messages)


def _alert(key: str = "sla:test", *, role: str = "supervisor", message: str = "Order T1 is over its time limit") -> Alert:
    return Alert.objects.create(kind="sla_breach", for_role=role, dedupe_key=key, message=message, link="/board/")


def _in_thread(work) -> threading.Thread:
    def run():
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_slow_mail_server_blocks_no_one_acknowledging_the_alert(people, settings):
    people["supervisor"].email = "zheng@beile.example"
    people["supervisor"].save()
    settings.EMAIL_BACKEND = f"{__name__}.GatedBackend"
    GatedBackend.entered.clear()
    GatedBackend.release.clear()
    GatedBackend.sent = []
    alert = _alert()
    sweep = _in_thread(sla.sla_sweep)
    try:
        assert GatedBackend.entered.wait(timeout=10), "the sweep never reached the mail server"
        # The sweep is now inside the mail server's send: the supervisor acknowledges meanwhile.
        acknowledge = _in_thread(lambda: alert_acknowledge(alert=alert, by=Actor.of(people["supervisor"])))
        acknowledge.join(timeout=5)
        assert not acknowledge.is_alive(), "acknowledging waited for the mail server: the sweep held the alert's row lock"
        # And the next sweep is not held up either.
        next_sweep = _in_thread(sla.sla_sweep)
        next_sweep.join(timeout=5)
        assert not next_sweep.is_alive(), "a second sweep waited for the first one's mail"
    finally:
        GatedBackend.release.set()
        sweep.join(timeout=30)
    alert.refresh_from_db()
    assert alert.acknowledged_at is not None and alert.emailed_at is not None
    assert len(GatedBackend.sent) == 1  # the second sweep did not send what the first had claimed


def test_a_failed_send_is_retried_and_a_sent_one_never_again(people, settings):
    people["supervisor"].email = "zheng@beile.example"
    people["supervisor"].save()
    settings.EMAIL_BACKEND = f"{__name__}.RefusingOnceBackend"
    RefusingOnceBackend.refusals_left = 1
    alert = _alert()
    assert alerts.alerts_email_send() == 0
    alert.refresh_from_db()
    assert alert.emailed_at is None and alert.email_claimed_at is None  # released for the next sweep
    assert alerts.alerts_email_send() == 1
    assert alerts.alerts_email_send() == 0
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["zheng@beile.example"]
    assert "http://" in mail.outbox[0].body and "/board/" in mail.outbox[0].body


def test_a_claim_left_by_a_crashed_sender_expires(people):
    people["supervisor"].email = "zheng@beile.example"
    people["supervisor"].save()
    alert = _alert()
    Alert.objects.filter(pk=alert.pk).update(email_claimed_at=timezone.now())  # a sender died mid-send
    assert alerts.alerts_email_send() == 0
    later = timezone.now() + alerts.EMAIL_CLAIM + datetime.timedelta(seconds=1)
    assert alerts.alerts_email_send(now=later) == 1
    assert len(mail.outbox) == 1


def test_each_address_gets_each_alert_once(people, settings):
    settings.ALERT_EMAILS = ["ops@beile.example"]
    people["supervisor"].email = "zheng@beile.example"
    people["supervisor"].save()
    people["dispatcher"].email = "diao@beile.example"
    people["dispatcher"].save()
    _alert("a", role="supervisor", message="Order A is late")
    _alert("b", role="dispatcher", message="Order B is late")
    assert alerts.alerts_email_send() == 3
    received = {tuple(message.to): message for message in mail.outbox}
    assert set(received) == {("ops@beile.example",), ("zheng@beile.example",), ("diao@beile.example",)}
    assert "Order A" in received[("ops@beile.example",)].body and "Order B" in received[("ops@beile.example",)].body
    assert "Order B" not in received[("zheng@beile.example",)].body


def test_a_ticket_alert_goes_out_once_through_the_same_path(settings):
    settings.ALERT_EMAILS = ["ops@beile.example"]
    alert = Alert.objects.create(
        kind="ticket", for_role="courier", dedupe_key="ticket:test", message="Shipment ZT1: no update for 24 h"
    )
    email_alert.apply(args=[alert.pk])
    email_alert.apply(args=[alert.pk])
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@beile.example"] and "ZT1" in mail.outbox[0].body
    alert.refresh_from_db()
    assert alert.emailed_at is not None


def test_an_old_unsent_alert_stays_in_app_only(people):
    people["supervisor"].email = "zheng@beile.example"
    people["supervisor"].save()
    alert = _alert()
    Alert.objects.filter(pk=alert.pk).update(
        created_at=timezone.now() - alerts.EMAIL_RETRY_WINDOW - datetime.timedelta(minutes=1)
    )
    assert alerts.alerts_email_send() == 0 and mail.outbox == []
