"""What every outbox shares (the WeChat customer messages and shipping uploads, SMS, the WeCom
robot, the Douyin write-backs, the Kuaidi100 subscriptions): a row written in the caller's
transaction is handed to a task after commit, and a beat relay hands over again whatever a lost
task or a down broker left due.

- one sender at a time: a sender claims the row (locked, or skipped when another holds it;
  attempts + 1; next_attempt_at pushed past a lease) before calling the provider, so the relay
  and the original task never both send; a sender that dies mid-send leaves the claim to expire;
- the sender writes its outcome through `mine`, the row while its claim holds: a sender whose
  lease ran out and whose row was claimed again changes nothing;
- a failed send is retried with backoff, a permanent one (or the last attempt) is refused.

What a row says, how it is sent and what a refusal means stay in each provider's folder.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)

# The statuses the outboxes with a `status` field share (their choices carry these values).
PENDING = "pending"
FAILED = "failed"
REFUSED = "refused"
UNSENT = [PENDING, FAILED]


def unsent(model: type[Model]) -> QuerySet:
    """The rows of an outbox with a `status` field still to be sent (served by its partial index
    on next_attempt_at)."""
    return model.objects.filter(status__in=UNSENT)


def enqueue(task, pk: int) -> None:
    """Hand a row to its task without letting a broker outage fail the caller: the row is the
    record, and the relay hands it over when the broker is back."""
    try:
        task.apply_async(args=[pk], retry=False)
    except Exception:  # noqa: BLE001 - broker down: the row waits for the relay
        logger.warning("broker unavailable; %s(%s) left to the relay", task.name, pk)


def relay(rows: QuerySet, send: Callable[[int], object], *, now: datetime.datetime | None = None, limit: int) -> int:
    """Beat: `send` every row of `rows` whose next attempt is due, the longest due first, at most
    `limit`; returns how many. Unlocked: the sender's claim decides who sends."""
    due = list(
        rows.filter(next_attempt_at__lte=now or timezone.now()).order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        send(pk)
    return len(due)


def lock_due(rows: QuerySet, pk: int, *, now: datetime.datetime, of: tuple[str, ...] = ()) -> Model | None:
    """Row `pk` of `rows`, locked, if it is due; None when it is not, or another sender holds it.
    Call it in a transaction, and `claim` the row in the same one."""
    return rows.select_for_update(skip_locked=True, of=of).filter(pk=pk, next_attempt_at__lte=now).first()


def claim(row: Model, *, now: datetime.datetime) -> None:
    """Claim a locked row for one send: attempts + 1, and its next attempt after the lease."""
    row.attempts += 1
    row.next_attempt_at = now + datetime.timedelta(seconds=settings.INTEGRATION_CLAIM_SECONDS)
    row.save(update_fields=["attempts", "next_attempt_at"])


def claim_due(rows: QuerySet, pk: int, *, now: datetime.datetime | None = None, of: tuple[str, ...] = ()) -> Model | None:
    """`lock_due` and `claim` in a transaction of their own: the claimed row, or None when it is
    not due or another sender holds it."""
    now = now or timezone.now()
    with transaction.atomic():
        row = lock_due(rows, pk, now=now, of=of)
        if row is not None:
            claim(row, now=now)
    return row


def mine(row: Model) -> QuerySet:
    """The claimed row while this claim holds: the sender writes its outcome through it."""
    return type(row).objects.filter(pk=row.pk, attempts=row.attempts)


def backoff(attempts: int, *, first: int = 15, cap: int = 1800) -> datetime.timedelta:
    """The wait after a row's `attempts`-th failed send: `first` seconds, doubling, at most `cap`."""
    return datetime.timedelta(seconds=min(first * 2 ** (attempts - 1), cap))


def send_failed(row: Model, exc, *, max_attempts: int, wait: datetime.timedelta, **fields) -> str:
    """After the claimed `row`'s send raised `exc` (a provider error with `permanent`): refused
    when it is permanent or the row's attempts are spent, otherwise failed and due again after
    `wait`. The error, and `fields`, are written either way. Returns "refused" or "retry"."""
    fields["last_error"] = str(exc)[:300]
    if exc.permanent or row.attempts >= max_attempts:
        mine(row).update(status=REFUSED, **fields)
        return "refused"
    mine(row).update(status=FAILED, next_attempt_at=timezone.now() + wait, **fields)
    return "retry"
