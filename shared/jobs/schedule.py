"""What the nightly schedule owes: missed scheduled backups, caught up by housekeeping.

When the scheduled tick cannot start a service's backup (APIM busy, throttled past the
retry budget, storage or network trouble), or a scheduled backup ends Failed, the
service *owes* a backup: a row in OPERATIONS_TABLE (PartitionKey ``owed``, RowKey the
service's name) with ``Since``, ``Attempts``, ``LastError``, ``NextAttemptAt`` and the
``OperationId`` of a start in flight. Housekeeping tries again on later ticks with
backoff (5, 10, then every 15 minutes) until a backup of that service succeeds:
any backup, scheduled, caught up or on demand, created at or after ``Since`` pays the
debt. A tick that never ran or died half-way (the host down, storage unreachable at
02:00) leaves no row; housekeeping notices it by the schedule's last run time (shared.
ncrontab) and a mark each finished tick leaves (PartitionKey ``schedule``, RowKey
``tick``), and records the debt itself.

Also here: the RPO check housekeeping runs on every tick, and the signals for both.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared import signals
from shared.rules import errors, ncrontab
from shared.rules.model import (
    BACKUP_LIFETIME,
    BackupRecord,
    OperationKind,
    OperationRecord,
    Status,
    Trigger,
    utc,
)
from shared.rules.naming import ServiceId

if TYPE_CHECKING:
    from shared.jobs.backups import Started
    from shared.runtime import Runtime

log = logging.getLogger(__name__)

OWED_PARTITION = "owed"
TICK_PARTITION, TICK_ROW = "schedule", "tick"
# A debt older than this is signalled (ScheduleOwed) on every housekeeping tick until
# paid: two hours covers a deployment that holds the service at 02:00 and a throttled
# hour, and leaves most of the day to act before the RPO (26 h by default) is broken.
OWED_GRACE = timedelta(hours=2)
# Waits between catch-up attempts: 5 minutes doubling, at most 15. A nightly schedule
# and the default 26-hour RPO leave 2 hours: the first try after an outage must come
# soon, and a try costs a few Resource Manager reads.
FIRST_BACKOFF = timedelta(minutes=5)
MAX_BACKOFF = timedelta(minutes=15)
# How long after its time a scheduled run may take to leave its mark before
# housekeeping counts it as missed.
TICK_SLACK = timedelta(minutes=10)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt (pure)."""
    wait: timedelta = FIRST_BACKOFF * 2 ** min(max(0, attempts - 1), 10)
    return min(wait, MAX_BACKOFF)


@dataclass(frozen=True)
class Debt:
    service: str  # lower-case name (RowKey)
    service_id: str
    since: datetime
    attempts: int
    last_error: str
    next_attempt_at: datetime
    operation_id: str = ""  # a start in flight that may pay the debt
    etag: str | None = None

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": OWED_PARTITION,
            "RowKey": self.service,
            "ServiceId": self.service_id,
            "Since": utc(self.since),
            "Attempts": self.attempts,
            "LastError": self.last_error[:1000],
            "NextAttemptAt": utc(self.next_attempt_at),
            "OperationId": self.operation_id,
        }

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> Debt:
        metadata = getattr(entity, "metadata", None) or {}
        return cls(
            service=entity["RowKey"],
            service_id=entity.get("ServiceId", ""),
            since=utc(entity["Since"]),
            attempts=int(entity.get("Attempts", 0)),
            last_error=str(entity.get("LastError", "")),
            next_attempt_at=utc(entity["NextAttemptAt"]),
            operation_id=str(entity.get("OperationId", "")),
            etag=metadata.get("etag"),
        )

    def to_api(self) -> dict[str, Any]:
        """Health's ``missedSchedule``."""
        return {
            "since": _iso(self.since),
            "attempts": self.attempts,
            "lastError": self.last_error,
            "nextAttemptAt": _iso(self.next_attempt_at),
        }


def _iso(moment: datetime) -> str:
    return utc(moment).isoformat().replace("+00:00", "Z")


# Reading and writing debts ---------------------------------------------------------


def debts(runtime: Runtime) -> dict[str, Debt]:
    rows = runtime.operations.table.query_entities(
        "PartitionKey eq @pk", parameters={"pk": OWED_PARTITION}
    )
    return {d.service: d for d in (Debt.from_entity(e) for e in rows)}


def get_debt(runtime: Runtime, service: str) -> Debt | None:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return Debt.from_entity(runtime.operations.table.get_entity(OWED_PARTITION, service))
    except ResourceNotFoundError:
        return None


def _save(runtime: Runtime, debt: Debt) -> None:
    """Create, or replace if unchanged since read; a concurrent change wins (no error)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import (
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
    )
    from azure.data.tables import UpdateMode

    table = runtime.operations.table
    try:
        if debt.etag is None:
            table.create_entity(debt.to_entity())
        else:
            table.update_entity(
                debt.to_entity(),
                mode=UpdateMode.REPLACE,
                etag=debt.etag,
                match_condition=MatchConditions.IfNotModified,
            )
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        log.info("The debt of %s changed meanwhile; left to the next tick", debt.service)


def _pay(runtime: Runtime, debt: Debt, how: str) -> None:
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError, ResourceModifiedError):
        runtime.operations.table.delete_entity(
            OWED_PARTITION,
            debt.service,
            etag=debt.etag,
            match_condition=MatchConditions.IfNotModified,
        )
    log.info("Scheduled backup of %s owed since %s is paid: %s", debt.service, debt.since, how)


def record_missed(
    runtime: Runtime, service: ServiceId, error: str, since: datetime | None = None
) -> Debt:
    """Note that ``service`` owes a backup (or that one more attempt failed)."""
    now = runtime.clock()
    debt = get_debt(runtime, service.key)
    if debt is None:
        debt = Debt(service.key, service.resource_id, since or now, 0, error, now)
    attempts = debt.attempts + 1
    debt = replace(
        debt,
        attempts=attempts,
        last_error=error,
        next_attempt_at=now + backoff(attempts),
        operation_id="",
    )
    _save(runtime, debt)
    return debt


def _has_backup_since(runtime: Runtime, service: str, since: datetime) -> bool:
    """A Succeeded backup of ``service`` created at or after ``since``."""
    # A RowKey range (backup names sort by time): flat in the ledger's history.
    return any(r.status is Status.SUCCEEDED for r in runtime.ledger.since(service, since))


def is_paid(runtime: Runtime, debt: Debt) -> bool:
    return _has_backup_since(runtime, debt.service, debt.since)


# The scheduled tick -----------------------------------------------------------------


def start_scheduled(
    runtime: Runtime, service: ServiceId, start: Callable[[], Started]
) -> Started | None:
    """The scheduled tick's start of one service: a failure becomes a debt, never lost."""
    try:
        started = start()
    except errors.ProductError as exc:
        log.warning(
            "Scheduled backup of %s not started: %s (%s); owed", service.name, exc.message, exc.code
        )
        _note(runtime, service, f"{exc.code}: {exc.message}")
        return None
    except Exception as exc:
        # One service's storage or network failure must not cost the others their backup.
        log.exception("Scheduled backup of %s failed; owed", service.name)
        _note(runtime, service, f"{type(exc).__name__} while starting the backup")
        return None
    try:
        debt = get_debt(runtime, service.key)
        if debt is not None:  # an older debt: this start may pay it
            _save(runtime, replace(debt, operation_id=started.operation.operation_id))
    except Exception:
        log.exception("Could not link the scheduled start of %s to its debt", service.name)
    return started


def _note(runtime: Runtime, service: ServiceId, error: str) -> None:
    try:
        record_missed(runtime, service, error)
    except Exception:
        # Storage is down too: housekeeping finds the missed run by the schedule's time.
        log.exception("Could not record that %s owes its scheduled backup", service.name)


def mark_tick(runtime: Runtime) -> None:
    """The scheduled run finished: every service was started or owes its backup."""
    from azure.data.tables import UpdateMode

    try:
        runtime.operations.table.upsert_entity(
            {"PartitionKey": TICK_PARTITION, "RowKey": TICK_ROW, "RanAt": utc(runtime.clock())},
            mode=UpdateMode.REPLACE,
        )
    except Exception:
        log.exception("Could not mark the scheduled run as done")


def note_failed(runtime: Runtime, operation: OperationRecord) -> None:
    """A scheduled (or catch-up) backup ended Failed: the night's backup is still owed."""
    if operation.kind is not OperationKind.BACKUP or operation.trigger is not Trigger.SCHEDULE:
        return
    service = runtime.settings.find_service(operation.service_id or operation.service)
    if service is None:
        return
    try:
        debt = get_debt(runtime, service.key)
        error = operation.error or "the backup failed"
        if debt is None:
            record_missed(runtime, service, error, since=operation.created_at)
        elif debt.operation_id == operation.operation_id:
            # Its attempt was counted when it started; only the outcome is new.
            retry_at = runtime.clock() + FIRST_BACKOFF
            _save(
                runtime,
                replace(debt, last_error=error, operation_id="", next_attempt_at=retry_at),
            )
    except Exception:
        log.exception("Could not record the failed backup of %s as owed", service.name)


# Housekeeping ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CatchUp:
    service: str
    outcome: str  # "paid", "started", "failed", "waiting", "running"
    detail: str = ""


def _infer_missed_run(runtime: Runtime, owed: dict[str, Debt]) -> None:
    """Once the schedule's last run is TICK_SLACK past, every service with neither a
    Succeeded backup since then, nor a running one, nor a debt owes one: its run never
    happened or died half-way (no mark since), or it started and ended Failed in a
    housekeeping tick that died before noting the debt (the operation row is the only
    write that survived). When every service has its backup, the mark says so
    (``Covered``), and later ticks of the day cost no ledger read."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import UpdateMode

    try:
        mark = runtime.operations.table.get_entity(TICK_PARTITION, TICK_ROW)
    except ResourceNotFoundError:
        return  # no scheduled run ever finished here: nothing to compare with
    now = runtime.clock()
    try:
        due = ncrontab.previous_run(runtime.settings.backup_schedule, now)
    except ValueError as exc:
        log.warning("BACKUP_SCHEDULE not understood (%s): missed runs are not detected", exc)
        return
    if due is None or now - due < TICK_SLACK:
        return
    covered = mark.get("Covered")
    if covered is not None and utc(covered) >= due:
        return
    ran = utc(mark["RanAt"]) >= due
    all_covered = True
    for service in runtime.settings.apim_services:
        rows = list(runtime.ledger.since(service.key, due))
        if any(r.status is Status.SUCCEEDED for r in rows):
            continue
        all_covered = False
        if service.key in owed or _any_live(runtime, rows):
            continue
        failed = [r.error for r in rows if r.status is Status.FAILED and r.error]
        if not ran:
            error = f"The scheduled run of {_iso(due)} did not start it (it did not run or finish)"
        else:
            error = failed[-1] if failed else f"The scheduled run of {_iso(due)} left no backup"
        debt = Debt(service.key, service.resource_id, due, 0, error, now)
        _save(runtime, debt)
        log.warning("Scheduled backup of %s of %s not taken; owed", service.name, _iso(due))
        stored = get_debt(runtime, service.key)
        if stored is not None:
            owed[service.key] = stored
    if all_covered:
        try:
            runtime.operations.table.upsert_entity(
                {"PartitionKey": TICK_PARTITION, "RowKey": TICK_ROW, "Covered": utc(due)},
                mode=UpdateMode.MERGE,
            )
        except Exception:
            log.exception("Could not mark the scheduled run as covered; the next tick looks again")


def _any_live(runtime: Runtime, rows: list[BackupRecord]) -> bool:
    """A Running row whose operation is still running (a Running row without a live
    operation is a start that died half-way: it will never finish)."""
    for row in rows:
        if row.status is Status.RUNNING and row.operation_id:
            operation = runtime.operations.get(row.operation_id)
            if operation is not None and operation.is_running:
                return True
    return False


def catch_up(runtime: Runtime) -> list[CatchUp]:
    """Start owed backups whose next attempt is due; settle debts that are paid."""
    owed = debts(runtime)
    _infer_missed_run(runtime, owed)
    results: list[CatchUp] = []
    for debt in owed.values():
        try:
            results.append(_catch_up_one(runtime, debt))
        except Exception as exc:
            log.exception("Catch-up of %s failed", debt.service)
            results.append(CatchUp(debt.service, "failed", type(exc).__name__))
    return results


def _catch_up_one(runtime: Runtime, debt: Debt) -> CatchUp:
    from shared.jobs.backups import start_backup  # backups imports this module

    now = runtime.clock()
    service = runtime.settings.find_service(debt.service_id or debt.service)
    if service is None:
        _pay(runtime, debt, "the service is no longer configured")
        return CatchUp(debt.service, "paid", "not configured")
    if is_paid(runtime, debt):
        _pay(runtime, debt, "a backup created since has succeeded")
        return CatchUp(debt.service, "paid")
    if debt.operation_id:
        operation = runtime.operations.get(debt.operation_id)
        if operation is not None and operation.is_running:
            _signal_if_late(debt, now)
            return CatchUp(debt.service, "running", debt.operation_id)
        # Ended without paying (its failure may not have been noted: a crash), or gone.
        error = (operation.error if operation is not None else None) or debt.last_error
        debt = replace(debt, operation_id="", last_error=error)
        _save(runtime, debt)
        debt = get_debt(runtime, debt.service) or debt
    if now < debt.next_attempt_at:
        _signal_if_late(debt, now)
        return CatchUp(debt.service, "waiting", _iso(debt.next_attempt_at))
    attempts = debt.attempts + 1
    try:
        started = start_backup(runtime, service.resource_id, Trigger.SCHEDULE)
    except errors.ProductError as exc:
        error = f"{exc.code}: {exc.message}"
    except Exception as exc:
        log.exception("Catch-up start of %s failed", service.name)
        error = f"{type(exc).__name__} while starting the backup"
    else:
        _save(
            runtime,
            replace(
                debt,
                attempts=attempts,
                next_attempt_at=now + backoff(attempts),
                operation_id=started.operation.operation_id,
            ),
        )
        log.info("Owed backup of %s started: %s", service.name, started.backup.backup_name)
        return CatchUp(debt.service, "started", started.backup.backup_name)
    debt = replace(
        debt, attempts=attempts, last_error=error, next_attempt_at=now + backoff(attempts)
    )
    _save(runtime, debt)
    _signal_if_late(debt, now)
    return CatchUp(debt.service, "failed", error)


def _signal_if_late(debt: Debt, now: datetime) -> None:
    if now - debt.since >= OWED_GRACE:
        signals.emit(
            signals.Signal.SCHEDULE_OWED,
            service=debt.service,
            since=debt.since,
            attempts=debt.attempts,
            lastError=debt.last_error,
        )


# The RPO ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RpoBreach:
    service: str
    newest_backup: str | None
    age_hours: float | None


def check_rpo(runtime: Runtime) -> list[RpoBreach]:
    """Every service's newest restorable backup against RPO_HOURS; one RpoBreached signal
    per breached service per call (housekeeping calls it every tick, so a stateful alert
    stays fired while the breach lasts and resolves once it ends)."""
    now = runtime.clock()
    rpo = timedelta(hours=runtime.settings.rpo_hours)
    breaches: list[RpoBreach] = []
    for service in runtime.settings.apim_services:
        # Only the last 30 days can hold a restorable backup: a RowKey range, one request
        # whatever the history.
        newest = max(
            (
                r
                for r in runtime.ledger.since(service.key, now - BACKUP_LIFETIME, Status.SUCCEEDED)
                if r.is_restorable(now)
            ),
            key=lambda r: (r.created_at, r.backup_name),
            default=None,
        )
        age = None if newest is None else now - newest.created_at
        if age is not None and age <= rpo:
            continue
        hours = None if age is None else round(age.total_seconds() / 3600, 2)
        breach = RpoBreach(service.key, newest.backup_name if newest else None, hours)
        breaches.append(breach)
        signals.emit(
            signals.Signal.RPO_BREACHED,
            service=service.key,
            newestBackup=breach.newest_backup,
            ageHours=hours,
            rpoHours=runtime.settings.rpo_hours,
        )
    return breaches
