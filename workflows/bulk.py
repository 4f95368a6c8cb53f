"""Bulk actions over a selection or a whole saved view (issue 17).

A batch never decides anything about an order itself: each order goes through the same service
as on its card (orders/services.py: lock, version, role, guards, event), so a guard written once
holds for a thousand orders too. Each order is its own transaction together with its result row,
so an order is either changed and marked done, or untouched and marked refused / conflict; a
crash between orders loses nothing and a redelivered task continues with the orders still waiting.

The orders are chosen when the batch is created, each with the version it had then: when anyone
else (a person on the card, another batch over an overlapping selection) changes the order
before the batch reaches it, the service raises OrderConflict and the batch reports "changed by
someone else" instead of acting on a state its author never saw. Every event the batch writes
carries its id (orders/events.py `in_batch`).
"""

from __future__ import annotations

import datetime
import logging
from collections import Counter
from collections.abc import Callable, Iterable

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, F, QuerySet
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from orders import events, rules, selectors, services
from orders.access import Actor, user_roles
from orders.models import Carrier, HoldReason, NoteAudience, NoteKind, Order, RiskTag
from workflows.models import BulkAction, BulkBatch, BulkItem, ItemOutcome, RunState, SavedView

logger = logging.getLogger(__name__)

# A batch is chosen in one request; beyond this a view should be narrowed first.
MAX_BATCH = 20_000
CHUNK = 200


class BulkRefused(Exception):
    """The batch itself cannot start (nothing selected, too many, a role that may never do it)."""


# --- What each action calls: the order's own service ---------------------------------------------


def _transition(name: str) -> Callable:
    def run(order: Order, by: Actor, version: int | None, params: dict) -> None:
        services.order_transition(order=order, name=name, by=by, expected_version=version)

    return run


def _assign(order: Order, by: Actor, version: int | None, params: dict) -> None:
    services.order_assign(order=order, by=by, assignee=params["_assignee"], expected_version=version)


def _until(raw: str) -> datetime.datetime | None:
    """The expected release as typed in the bar (a datetime-local field: Beijing wall-clock time)."""
    if not raw:
        return None
    value = parse_datetime(raw.replace(" ", "T"))
    if value is None:
        raise BulkRefused(_("Enter the time like 2026-11-24 18:00."))
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def _hold(order: Order, by: Actor, version: int | None, params: dict) -> None:
    until = _until(params.get("until", ""))
    services.order_hold(
        order=order, by=by, reason=params.get("reason", ""), until=until, note=params.get("note", ""), expected_version=version
    )


def _release(order: Order, by: Actor, version: int | None, params: dict) -> None:
    services.order_release(order=order, by=by, expected_version=version)


def _tag_add(order: Order, by: Actor, version: int | None, params: dict) -> None:
    services.order_tag_add(order=order, by=by, tag=params.get("tag", ""))


def _tag_resolve(order: Order, by: Actor, version: int | None, params: dict) -> None:
    services.order_tag_resolve(order=order, by=by, tag=params.get("tag", ""), resolution=params.get("resolution", ""))


def _set_carrier(order: Order, by: Actor, version: int | None, params: dict) -> None:
    services.order_set_carrier(order=order, by=by, carrier_code=params.get("carrier", ""), expected_version=version)


def _note(order: Order, by: Actor, version: int | None, params: dict) -> None:
    services.order_add_note(
        order=order,
        by=by,
        body=params.get("body", ""),
        kind=params.get("kind", NoteKind.INFO),
        audience=params.get("audience", ""),
    )


ACTIONS: dict[str, Callable[[Order, Actor, int | None, dict], None]] = {
    BulkAction.APPROVE: _transition("approve"),
    BulkAction.START_PICKING: _transition("start_picking"),
    BulkAction.ASSIGN: _assign,
    BulkAction.HOLD: _hold,
    BulkAction.RELEASE: _release,
    BulkAction.TAG_ADD: _tag_add,
    BulkAction.TAG_RESOLVE: _tag_resolve,
    BulkAction.SET_CARRIER: _set_carrier,
    BulkAction.NOTE: _note,
}


def allowed_roles(action: str, params: dict) -> frozenset[str] | None:
    """The roles the role matrix (orders/rules.py) lets run this action; None: every role. Read
    here only to refuse a whole batch at once; each order's service checks it again."""
    if action in (BulkAction.APPROVE, BulkAction.START_PICKING):
        return rules.TRANSITION_ROLES[action]
    if action in (BulkAction.HOLD, BulkAction.RELEASE):
        return rules.ACTION_ROLES["hold"]
    if action == BulkAction.ASSIGN:
        return rules.ACTION_ROLES["assign"]
    if action == BulkAction.SET_CARRIER:
        return rules.ACTION_ROLES["set_carrier"]
    if action == BulkAction.TAG_RESOLVE:
        return rules.TAG_RESOLVER_ROLES.get(params.get("tag", ""), frozenset())
    return None


def actions_for(roles: frozenset[str]) -> list[tuple[str, str]]:
    """The bulk actions the bulk bar offers these roles (resolving a tag: any tag they resolve)."""

    def may(value: str) -> bool:
        if rules.SUPERVISOR in roles:
            return True
        if value == BulkAction.TAG_RESOLVE:
            return any(roles & allowed for allowed in rules.TAG_RESOLVER_ROLES.values())
        allowed = allowed_roles(value, {})
        return allowed is None or bool(roles & allowed)

    return [(value, label) for value, label in BulkAction.choices if may(value)]


def _clean_params(action: str, params: dict) -> dict:
    """The form's input, checked once for the whole batch (each service checks it again)."""
    if action not in ACTIONS:
        raise BulkRefused(_("Unknown action."))
    # Only what was filled in: the bar sends every action's fields, most of them empty.
    params = {key: value.strip() for key, value in params.items() if isinstance(value, str) and value.strip()}
    if action == BulkAction.HOLD and params.get("reason") not in HoldReason.values:
        raise BulkRefused(_("Choose a hold reason."))
    if action == BulkAction.HOLD:
        _until(params.get("until", ""))
    if action in (BulkAction.TAG_ADD, BulkAction.TAG_RESOLVE) and params.get("tag") not in RiskTag.values:
        raise BulkRefused(_("Unknown tag."))
    if action == BulkAction.TAG_RESOLVE and not params.get("resolution"):
        raise BulkRefused(_("Say how the exception was resolved."))
    if action == BulkAction.SET_CARRIER and params.get("carrier") not in Carrier.values:
        raise BulkRefused(_("Unknown carrier: %(code)s.") % {"code": params.get("carrier", "")})
    if action == BulkAction.NOTE:
        if not params.get("body"):
            raise BulkRefused(_("A note cannot be empty."))
        if params.get("kind", NoteKind.INFO) not in NoteKind.values or params.get("audience", "") not in NoteAudience.values:
            raise BulkRefused(_("Choose a note kind and audience from the list."))
    if action == BulkAction.ASSIGN and not User.objects.filter(username=params.get("assignee", ""), is_active=True).exists():
        raise BulkRefused(_("Choose the person to assign."))
    return params


def _may_run(user, action: str, params: dict) -> None:
    allowed = allowed_roles(action, params)
    roles = user_roles(user)
    if allowed is not None and not roles & allowed and rules.SUPERVISOR not in roles:
        raise BulkRefused(_("Your role may not do this."))


# --- Creating a batch --------------------------------------------------------------------------


def batch_create(
    *,
    user,
    action: str,
    params: dict,
    order_numbers: Iterable[str] | None = None,
    filters: selectors.OrderFilters | None = None,
    saved_view: SavedView | None = None,
) -> BulkBatch:
    """A queued batch over the chosen orders (the given order numbers, or every order the
    filters select), each remembered with its current version; the task starts after commit."""
    params = _clean_params(action, params)
    _may_run(user, action, params)
    if order_numbers is not None:
        queryset = Order.objects.filter(order_number__in=list(order_numbers)[: MAX_BATCH + 1])
    elif filters is not None:
        queryset = selectors.filtered_orders(user=user, filters=filters)
    else:
        raise BulkRefused(_("Select orders first."))
    with transaction.atomic():
        batch = BulkBatch.objects.create(action=action, params=params, created_by=user, saved_view=saved_view)
        total = _add_items(batch, queryset.values_list("pk", "version"))
        if total == 0:
            raise BulkRefused(_("Select orders first."))
        _enqueue_on_commit(batch)
    return batch


def _add_items(batch: BulkBatch, rows: QuerySet) -> int:
    total = 0
    chunk: list[BulkItem] = []
    for pk, version in rows.order_by("pk").iterator(chunk_size=2000):
        total += 1
        if total > MAX_BATCH:
            raise BulkRefused(_("A batch takes at most %(limit)d orders; narrow the view first.") % {"limit": MAX_BATCH})
        chunk.append(BulkItem(batch=batch, order_id=pk, expected_version=version))
        if len(chunk) >= 2000:
            BulkItem.objects.bulk_create(chunk)
            chunk = []
    BulkItem.objects.bulk_create(chunk)
    BulkBatch.objects.filter(pk=batch.pk).update(total=total)
    batch.total = total
    return total


def batch_retry_refused(*, batch: BulkBatch, user) -> BulkBatch:
    """A new batch of the same action over the orders this one refused, at their current
    version (whoever retries has seen the refusals); the done and the conflicted are left alone."""
    if not batch.finished:
        raise BulkRefused(_("The batch is still running."))
    _may_run(user, batch.action, batch.params)
    refused = Order.objects.filter(pk__in=batch.items.filter(outcome=ItemOutcome.REFUSED).values("order_id"))
    with transaction.atomic():
        retry = BulkBatch.objects.create(
            action=batch.action, params=batch.params, created_by=user, saved_view=batch.saved_view, retry_of=batch
        )
        if _add_items(retry, refused.values_list("pk", "version")) == 0:
            raise BulkRefused(_("Nothing was refused; there is nothing to retry."))
        _enqueue_on_commit(retry)
    return retry


def _enqueue_on_commit(batch: BulkBatch) -> None:
    from workflows import tasks

    def send() -> None:
        try:
            tasks.run_bulk_batch.apply_async(args=[batch.pk], retry=False)
        except Exception:  # noqa: BLE001 - broker down: batches_resume (beat) starts it
            logger.warning("broker unavailable; bulk batch %s left to the resume scan", batch.pk)

    transaction.on_commit(send)


# --- Running a batch (the task's body) ----------------------------------------------------------


def batch_execute(*, batch_id: int) -> BulkBatch | None:
    """Claim the batch and run every waiting order through its service, one transaction each."""
    now = timezone.now()
    with transaction.atomic():
        batch = BulkBatch.objects.select_for_update().get(pk=batch_id)
        if batch.finished:
            return batch
        if batch.state == RunState.RUNNING and batch.heartbeat_at and now - batch.heartbeat_at < BulkBatch.HEARTBEAT_LEASE:
            return None  # another worker is on it (a redelivered task does nothing)
        batch.state = RunState.RUNNING
        batch.started_at = batch.started_at or now
        batch.heartbeat_at = now
        batch.save(update_fields=["state", "started_at", "heartbeat_at"])
    params = dict(batch.params)
    if batch.action == BulkAction.ASSIGN:
        params["_assignee"] = User.objects.get(username=params["assignee"])
    actor = Actor.of(batch.created_by)
    run = ACTIONS[batch.action]
    # The reasons are stored as the people reading them will see them (the cockpit is Chinese).
    with translation.override(settings.LANGUAGE_CODE):
        last_id = 0
        while True:
            chunk = list(
                BulkItem.objects.filter(batch=batch, outcome=ItemOutcome.PENDING, id__gt=last_id)
                .select_related("order")
                .order_by("id")[:CHUNK]
            )
            if not chunk:
                break
            counts: Counter[str] = Counter(_run_one(batch, item, run, actor, params) for item in chunk)
            last_id = chunk[-1].id
            BulkBatch.objects.filter(pk=batch.pk).update(
                processed=F("processed") + len(chunk),
                done_count=F("done_count") + counts[ItemOutcome.DONE],
                refused_count=F("refused_count") + counts[ItemOutcome.REFUSED],
                conflict_count=F("conflict_count") + counts[ItemOutcome.CONFLICT],
                heartbeat_at=timezone.now(),
            )
    return _finish(batch)


def _run_one(batch: BulkBatch, item: BulkItem, run: Callable, actor: Actor, params: dict) -> str:
    # The service's own transaction becomes a savepoint of this one, so the order's change and
    # its result row commit together: never a changed order still marked waiting (a redelivered
    # task would then act on it twice), never a result without its change.
    with transaction.atomic():
        try:
            with events.in_batch(batch.pk):
                run(item.order, actor, item.expected_version, params)
            outcome, message = ItemOutcome.DONE, ""
        except services.OrderConflict as error:
            outcome, message = ItemOutcome.CONFLICT, str(error)
        except services.OrderError as error:
            outcome, message = ItemOutcome.REFUSED, str(error)
        except Exception:  # noqa: BLE001 - one broken order must not stop (or, on redelivery, loop) the batch
            logger.exception("bulk batch %s: order %s failed", batch.pk, item.order_id)
            outcome, message = ItemOutcome.REFUSED, _("Unexpected error; this order was not changed. Try it on its card.")
        BulkItem.objects.filter(pk=item.pk).update(outcome=outcome, message=message[:500])
    return outcome


def _finish(batch: BulkBatch) -> BulkBatch:
    """The counts from the result rows themselves (the running counters are only progress)."""
    counts = dict(batch.items.values_list("outcome").annotate(n=Count("id")).values_list("outcome", "n"))
    BulkBatch.objects.filter(pk=batch.pk).update(
        state=RunState.DONE,
        processed=batch.total - counts.get(ItemOutcome.PENDING, 0),
        done_count=counts.get(ItemOutcome.DONE, 0),
        refused_count=counts.get(ItemOutcome.REFUSED, 0),
        conflict_count=counts.get(ItemOutcome.CONFLICT, 0),
        finished_at=timezone.now(),
    )
    batch.refresh_from_db()
    return batch


def batches_resume(*, now: datetime.datetime | None = None) -> list[int]:
    """Batches a lost task or a dead worker left behind (queued for a minute, or running without
    a heartbeat within the lease): the beat hands them to a worker again."""
    now = now or timezone.now()
    stale = BulkBatch.objects.filter(state=RunState.QUEUED, created_at__lt=now - datetime.timedelta(minutes=1)) | (
        BulkBatch.objects.filter(state=RunState.RUNNING, heartbeat_at__lt=now - BulkBatch.HEARTBEAT_LEASE)
    )
    return list(stale.values_list("pk", flat=True)[:50])


def batch_of(*, batch_id: int, user) -> BulkBatch:
    """A batch its author (or a supervisor) may look at; anyone else gets DoesNotExist."""
    batches = BulkBatch.objects.select_related("created_by", "retry_of")
    if rules.SUPERVISOR not in user_roles(user):
        batches = batches.filter(created_by=user)
    return batches.get(pk=batch_id)
