"""Change backups: what the Event Grid trigger and housekeeping do with configuration
changes (docs/change-backups.md).

- ``receive_event``: one event in. A change of a configured service is counted in its
  pending change (shared.adapters.changes); anything else is logged with its reason and
  dropped. A bad event never raises (Event Grid would retry it for a day); a storage
  failure does, so that a good event is delivered again.
- ``settle_and_start``: housekeeping's step. Each pending change is first paid by a
  backup that succeeded since it began (a scheduled or on-demand one too), then a change
  backup starts where the debounce rules (shared.rules.debounce) say one is due, through
  the same start as every other backup: its pre-checks and the per-service lock.
- ``health_entries`` and ``check_unprotected``: each service's pending change as health
  shows it, and the CHANGE_RPO_MINUTES watch that turns health 503 and signals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared import signals
from shared.jobs.backups import start_backup
from shared.rules import errors
from shared.rules.changes import Classification, classify
from shared.rules.debounce import DAY, DebouncePolicy, PendingChange, backup_due, pay
from shared.rules.model import BackupRecord, OperationRecord, Status, Trigger, iso
from shared.rules.naming import ServiceId
from shared.runtime import Runtime

log = logging.getLogger(__name__)


class GridEventLike(Protocol):
    """What the Functions library's EventGridEvent offers (the jobs import no
    azure.functions)."""

    @property
    def id(self) -> Any: ...
    @property
    def topic(self) -> Any: ...
    @property
    def subject(self) -> Any: ...
    @property
    def event_type(self) -> Any: ...
    @property
    def event_time(self) -> Any: ...
    @property
    def data_version(self) -> Any: ...
    def get_json(self) -> Any: ...


def event_body(event: GridEventLike) -> dict[str, Any]:
    """The Event Grid schema's JSON object, back from the trigger's parsed event."""
    moment = getattr(event, "event_time", None)
    try:
        data = event.get_json()
    except Exception:  # a payload that cannot be read is a malformed event, not an error
        data = None
    return {
        "id": getattr(event, "id", None),
        "topic": getattr(event, "topic", None),
        "subject": getattr(event, "subject", None),
        "eventType": getattr(event, "event_type", None),
        "eventTime": moment.isoformat() if isinstance(moment, datetime) else moment,
        "data": data,
        "dataVersion": getattr(event, "data_version", None),
    }


def receive_event(runtime: Runtime, event: GridEventLike) -> Classification:
    return receive(runtime, event_body(event))


def receive(runtime: Runtime, body: Any) -> Classification:
    """Classify one event (its JSON object) and count it when it is a change."""
    result = classify(body, runtime.settings.apim_services, runtime.clock())
    if result.change is None:
        log.info("Event %s dropped (%s): %s", result.event_id, result.verdict.value, result.reason)
        return result
    recorded = runtime.changes.record(result.change)
    if recorded.written:
        log.info(
            "Change recorded (event %s): %s; %d pending",
            result.event_id,
            result.reason,
            recorded.pending.count,
        )
    else:
        log.info("Event %s was already counted, or is inside a backup", result.event_id)
    return result


@dataclass(frozen=True)
class ChangeStart:
    """What housekeeping did about one service's pending change."""

    service: str
    outcome: str  # "started", "waiting", "busy", "paid" or "failed"
    reason: str
    pending: PendingChange | None = None  # what is still unprotected afterwards
    backup_name: str | None = None


def policy(runtime: Runtime) -> DebouncePolicy:
    settings = runtime.settings
    return DebouncePolicy(
        timedelta(minutes=settings.change_quiet_minutes),
        timedelta(minutes=settings.change_max_delay_minutes),
        settings.change_backups_per_day,
    )


def settle_and_start(
    runtime: Runtime, running: Iterable[OperationRecord] | None = None
) -> list[ChangeStart]:
    """Pay each pending change with the backups that succeeded since it began; start a
    change backup where one is due. One query of the pending rows, one ledger read per
    service that has one; one service's failure never costs another its turn.

    ``running``: the operations housekeeping has just polled; a service with one is not
    asked (the lock would refuse anyway, after a needless Resource Manager read)."""
    configured = {s.key: s for s in runtime.settings.apim_services}
    busy = {op.service for op in (running or ()) if op.is_running}
    outcomes: list[ChangeStart] = []
    for pending in list(runtime.changes.pending()):
        service = configured.get(pending.service)
        if service is None:
            log.info("Pending change of %s dropped: no longer configured", pending.service)
            runtime.changes.forget(pending.service)
            continue
        try:
            outcomes.append(_settle_one(runtime, service, pending, service.key in busy))
        except Exception as err:
            log.exception("Change backup of %s: could not settle or start it", service.name)
            reason = f"{type(err).__name__}: {err}"
            outcomes.append(ChangeStart(service.key, "failed", reason, pending))
    return outcomes


def _settle_one(
    runtime: Runtime, service: ServiceId, pending: PendingChange, busy: bool
) -> ChangeStart:
    now = runtime.clock()
    first = pending.first or now
    rows = list(runtime.ledger.since(service.key, min(first, now - DAY)))
    pending = _pay_from_ledger(runtime, pending, rows)
    if not pending.is_pending:
        return ChangeStart(service.key, "paid", f"paid by {pending.paid_by}")
    today = sum(1 for r in rows if r.trigger is Trigger.CHANGE and now - r.created_at < DAY)
    covering = max((r.created_at for r in rows if r.status is Status.RUNNING), default=None)
    decision = backup_due(pending, now, policy(runtime), today, covering)
    if not decision.due:
        return ChangeStart(service.key, "waiting", decision.reason, pending)
    if busy:
        return ChangeStart(service.key, "busy", "a backup or restore runs on it", pending)
    try:
        started = start_backup(
            runtime, service.resource_id, Trigger.CHANGE, changes=tuple(pending.what())
        )
    except errors.ProductError as err:
        log.warning("Change backup of %s not started: %s", service.name, err.message)
        outcome = "busy" if err.status == 409 else "failed"
        return ChangeStart(service.key, outcome, err.message, pending)
    name = started.backup.backup_name
    log.info("Change backup %s started: %s (%d change(s))", name, decision.reason, pending.count)
    return ChangeStart(service.key, "started", decision.reason, pending, name)


def paying_backup(pending: PendingChange, rows: Iterable[BackupRecord]) -> BackupRecord | None:
    """The newest backup that succeeded and started after the pending change began."""
    if pending.first is None:
        return None
    later = [r for r in rows if r.status is Status.SUCCEEDED and r.created_at > pending.first]
    return max(later, key=lambda r: (r.created_at, r.backup_name), default=None)


def _pay_from_ledger(
    runtime: Runtime, pending: PendingChange, rows: Iterable[BackupRecord]
) -> PendingChange:
    paying = paying_backup(pending, rows)
    if paying is None:
        return pending
    after = runtime.changes.pay(pending.service, paying.backup_name, paying.created_at).pending
    log.info(
        "Pending change of %s paid by %s (%s trigger): %d still unprotected",
        pending.service,
        paying.backup_name,
        paying.trigger.value,
        after.count,
    )
    return after


# What health shows, and the CHANGE_RPO_MINUTES watch ------------------------------------


def health_entries(
    runtime: Runtime, services: Sequence[ServiceId], recent: Sequence[Sequence[BackupRecord]]
) -> list[dict[str, Any] | None]:
    """Each service's pending change as health shows it (None: nothing unprotected), in
    the services' order. ``recent``: each service's ledger rows health has already read;
    a backup that succeeded since the last housekeeping tick already pays, in memory."""
    now = runtime.clock()
    rows = {p.service: p for p in runtime.changes.pending()}
    shown: list[dict[str, Any] | None] = []
    for service, backups in zip(services, recent, strict=True):
        pending = rows.get(service.key)
        paying = paying_backup(pending, backups) if pending else None
        if pending is not None and paying is not None:
            pending = pay(pending, paying.backup_name, paying.created_at)
        shown.append(entry(pending, now) if pending is not None and pending.is_pending else None)
    return shown


def entry(pending: PendingChange, now: datetime) -> dict[str, Any]:
    age = pending.oldest_age(now) or timedelta(0)
    return {
        "since": iso(pending.first),
        "lastChange": iso(pending.last),
        "count": pending.count,
        "oldestUnprotectedMinutes": round(age.total_seconds() / 60, 1),
        "changes": pending.what(),
    }


def unprotected_too_long(shown: Mapping[str, Any] | None, rpo_minutes: int | None) -> bool:
    """Whether a pending change (as health shows it) is older than CHANGE_RPO_MINUTES."""
    if shown is None or rpo_minutes is None:
        return False
    return float(shown["oldestUnprotectedMinutes"]) > rpo_minutes


def check_unprotected(runtime: Runtime, outcomes: Iterable[ChangeStart]) -> list[str]:
    """One ChangeUnprotected signal per service whose pending change has waited longer
    than CHANGE_RPO_MINUTES (housekeeping, every tick: a stateful alert stays fired while
    it lasts). From the tick's own outcomes: no further read."""
    limit = runtime.settings.change_rpo_minutes
    now = runtime.clock()
    breached: list[str] = []
    for outcome in outcomes:
        if outcome.pending is None or not outcome.pending.is_pending:
            continue
        shown = entry(outcome.pending, now)
        if not unprotected_too_long(shown, limit):
            continue
        breached.append(outcome.service)
        signals.emit(
            signals.Signal.CHANGE_UNPROTECTED,
            service=outcome.service,
            since=shown["since"],
            count=shown["count"],
            ageMinutes=shown["oldestUnprotectedMinutes"],
            rpoMinutes=limit,
        )
    return breached
