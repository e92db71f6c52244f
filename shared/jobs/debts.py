"""What the nightly schedule owes: a service whose scheduled backup could not be taken
owes one until a backup of it succeeds.

When the scheduled tick cannot start a service's backup (APIM busy, throttled past the
retry budget, storage or network trouble), or a scheduled backup ends Failed, the
service *owes* a backup: a row in OPERATIONS_TABLE (PartitionKey ``owed``, RowKey the
service's name) with ``Since``, ``Attempts``, ``LastError``, ``NextAttemptAt`` and the
``OperationId`` of a start in flight. Housekeeping tries again on later ticks with
backoff (5, 10, then every 15 minutes, :mod:`shared.jobs.catchup`) until a backup of
that service succeeds: any backup, scheduled, caught up or on demand, created at or
after ``Since`` pays the debt.

Here: reading, recording and paying debts, low enough that the scheduled tick
(:mod:`shared.jobs.schedule`), the settling of operations (:mod:`shared.jobs.operations`),
the catch-up and health may all use it. The rows are written by
:class:`~shared.adapters.debts.DebtStore`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from shared.adapters.debts import DebtStore
from shared.rules.debts import FIRST_BACKOFF, Debt, backoff
from shared.rules.model import OperationKind, OperationRecord, Status, Trigger
from shared.rules.naming import ServiceId, parse_backup_name

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = logging.getLogger(__name__)


def store(runtime: Runtime) -> DebtStore:
    """The debts' rows, in the operations table (read at each use: tests and the year's
    crash drills swap the table under a running Runtime)."""
    return DebtStore(runtime.operations)


def owed(runtime: Runtime) -> dict[str, Debt]:
    """Every debt, by service."""
    return store(runtime).all()


def get(runtime: Runtime, service: str) -> Debt | None:
    return store(runtime).get(service)


def save(runtime: Runtime, debt: Debt) -> None:
    """Create, or replace if unchanged since read; a concurrent change wins (no error)."""
    if not store(runtime).save(debt):
        log.info("The debt of %s changed meanwhile; left to the next tick", debt.service)


def pay(runtime: Runtime, debt: Debt, how: str) -> None:
    store(runtime).delete(debt)
    log.info("Scheduled backup of %s owed since %s is paid: %s", debt.service, debt.since, how)


def record_missed(
    runtime: Runtime, service: ServiceId, error: str, since: datetime | None = None
) -> Debt:
    """Note that ``service`` owes a backup (or that one more attempt failed).

    ``since`` (a new debt's; by default now): at or before the own time of any backup the
    failed start may have begun, so that this backup, if APIM took it, pays the debt."""
    now = runtime.clock()
    debt = get(runtime, service.key)
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
    save(runtime, debt)
    return debt


def is_paid(runtime: Runtime, debt: Debt) -> bool:
    """A Succeeded backup of the service created at or after the debt's ``Since``."""
    # A RowKey range (backup names sort by time): flat in the ledger's history.
    rows = runtime.ledger.since(debt.service, debt.since)
    return any(r.status is Status.SUCCEEDED for r in rows)


def note_failed(runtime: Runtime, operation: OperationRecord) -> None:
    """A scheduled (or catch-up) backup ended Failed: the night's backup is still owed."""
    if operation.kind is not OperationKind.BACKUP or operation.trigger is not Trigger.SCHEDULE:
        return
    service = runtime.settings.find_service(operation.service_id or operation.service)
    if service is None:
        return
    try:
        debt = get(runtime, service.key)
        error = operation.error or "the backup failed"
        if debt is None:
            record_missed(runtime, service, error, since=_own_time(operation))
        elif debt.operation_id == operation.operation_id:
            # Its attempt was counted when it started; only the outcome is new.
            retry_at = runtime.clock() + FIRST_BACKOFF
            save(
                runtime,
                replace(debt, last_error=error, operation_id="", next_attempt_at=retry_at),
            )
    except Exception:
        log.exception("Could not record the failed backup of %s as owed", service.name)


def _own_time(operation: OperationRecord) -> datetime:
    """The backup's own time (its name's, as its ledger row's ``CreatedAt``); the
    operation's creation when the name cannot be read."""
    try:
        return parse_backup_name(operation.backup_name).started_at
    except ValueError:
        return operation.created_at
