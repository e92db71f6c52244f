"""Housekeeping's catch-up: owed scheduled backups started again, with backoff, until one
succeeds; and the scheduled runs that left no trace found and owed.

A tick that never ran or died half-way (the host down, storage unreachable at 02:00)
writes no debt. Housekeeping notices it by the schedule's last run time
(:mod:`shared.rules.ncrontab`) and the mark each finished tick leaves (PartitionKey
``schedule``, RowKey ``tick``), and records the debt itself (:mod:`shared.jobs.debts`).
A debt older than OWED_GRACE is signalled (ScheduleOwed) on every tick until paid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared import signals
from shared.jobs import debts
from shared.jobs.backups import start_backup
from shared.parallel import run_each
from shared.rules import errors, ncrontab
from shared.rules.debts import Debt, backoff
from shared.rules.model import BackupRecord, Status, Trigger, iso
from shared.runtime import Runtime

log = logging.getLogger(__name__)

# A debt older than this is signalled (ScheduleOwed) on every housekeeping tick until
# paid: two hours covers a deployment that holds the service at 02:00 and a throttled
# hour, and leaves most of the day to act before the RPO (26 h by default) is broken.
OWED_GRACE = timedelta(hours=2)
# No catch-up start begins later than this into the pass: with each start allowed 60 s of
# throttle waits (shared.rules.arm), MAX_PARALLEL at once, the pass ends within about 5
# minutes, leaving the rest of the function's 10-minute timeout (host.json) to pruning,
# history and the RPO check. What is left is tried on the next tick.
CATCH_UP_BUDGET = timedelta(minutes=4)
# How long after its time a scheduled run may take to leave its mark before
# housekeeping counts it as missed.
TICK_SLACK = timedelta(minutes=10)


@dataclass(frozen=True)
class CatchUp:
    service: str
    outcome: str  # "paid", "started", "failed", "waiting", "running", "deferred"
    detail: str = ""


def catch_up(runtime: Runtime, budget: timedelta = CATCH_UP_BUDGET) -> list[CatchUp]:
    """Start owed backups whose next attempt is due, MAX_PARALLEL at once, as the
    scheduled tick does; settle debts that are paid. No start begins once ``budget`` has
    passed since the pass began: those debts are ``deferred`` to the next tick."""
    owed = debts.owed(runtime)
    _infer_missed_run(runtime, owed)
    deadline = runtime.clock() + budget

    def one(debt: Debt) -> CatchUp:
        if runtime.clock() >= deadline:
            log.warning("Catch-up of %s deferred: the pass's time budget is spent", debt.service)
            _signal_if_late(debt, runtime.clock())
            return CatchUp(debt.service, "deferred", "the catch-up pass's time budget is spent")
        try:
            return _catch_up_one(runtime, debt)
        except Exception as exc:
            log.exception("Catch-up of %s failed", debt.service)
            return CatchUp(debt.service, "failed", type(exc).__name__)

    return run_each(list(owed.values()), one, runtime.settings.max_parallel, "catch-up")


def _infer_missed_run(runtime: Runtime, owed: dict[str, Debt]) -> None:
    """Once the schedule's last run is TICK_SLACK past, every service with neither a
    Succeeded backup since then, nor a running one, nor a debt owes one: its run never
    happened or died half-way (no mark since), or it started and ended Failed in a
    housekeeping tick that died before noting the debt (the operation row is the only
    write that survived). When every service has its backup, the mark says so
    (``Covered``), and later ticks of the day cost no ledger read."""
    mark = debts.store(runtime).tick_mark()
    if mark is None:
        return  # no scheduled run ever finished here: nothing to compare with
    now = runtime.clock()
    try:
        due = ncrontab.previous_run(runtime.settings.backup_schedule, now)
    except ValueError as exc:
        log.warning("BACKUP_SCHEDULE not understood (%s): missed runs are not detected", exc)
        return
    if due is None or now - due < TICK_SLACK:
        return
    if mark.covered is not None and mark.covered >= due:
        return
    # A tick the host fired a few milliseconds early (01:59:59.996) is this run.
    ran = ncrontab.is_of_run(mark.ran_at, due)
    all_covered = True
    for service in runtime.settings.apim_services:
        rows = list(runtime.ledger.since(service.key, ncrontab.run_began(due)))
        if any(r.status is Status.SUCCEEDED for r in rows):
            continue
        all_covered = False
        if service.key in owed or _any_live(runtime, rows):
            continue
        failed = [r.error for r in rows if r.status is Status.FAILED and r.error]
        if not ran:
            error = f"The scheduled run of {iso(due)} did not start it (it did not run or finish)"
        else:
            error = failed[-1] if failed else f"The scheduled run of {iso(due)} left no backup"
        debts.save(runtime, Debt(service.key, service.resource_id, due, 0, error, now))
        log.warning("Scheduled backup of %s of %s not taken; owed", service.name, iso(due))
        stored = debts.get(runtime, service.key)
        if stored is not None:
            owed[service.key] = stored
    if all_covered:
        try:
            debts.store(runtime).mark_covered(due)
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


def _catch_up_one(runtime: Runtime, debt: Debt) -> CatchUp:
    now = runtime.clock()
    service = runtime.settings.find_service(debt.service_id or debt.service)
    if service is None:
        debts.pay(runtime, debt, "the service is no longer configured")
        return CatchUp(debt.service, "paid", "not configured")
    if debts.is_paid(runtime, debt):
        debts.pay(runtime, debt, "a backup created since has succeeded")
        return CatchUp(debt.service, "paid")
    if debt.operation_id:
        operation = runtime.operations.get(debt.operation_id)
        if operation is not None and operation.is_running:
            _signal_if_late(debt, now)
            return CatchUp(debt.service, "running", debt.operation_id)
        # Ended without paying (its failure may not have been noted: a crash), or gone.
        error = (operation.error if operation is not None else None) or debt.last_error
        debt = replace(debt, operation_id="", last_error=error)
        debts.save(runtime, debt)
        debt = debts.get(runtime, debt.service) or debt
    if now < debt.next_attempt_at:
        _signal_if_late(debt, now)
        return CatchUp(debt.service, "waiting", iso(debt.next_attempt_at))
    attempts = debt.attempts + 1
    try:
        started = start_backup(runtime, service.resource_id, Trigger.SCHEDULE)
    except errors.ProductError as exc:
        error = f"{exc.code}: {exc.message}"
    except Exception as exc:
        log.exception("Catch-up start of %s failed", service.name)
        error = f"{type(exc).__name__} while starting the backup"
    else:
        debt = replace(
            debt,
            attempts=attempts,
            next_attempt_at=now + backoff(attempts),
            operation_id=started.operation.operation_id,
        )
        debts.save(runtime, debt)
        log.info("Owed backup of %s started: %s", service.name, started.backup.backup_name)
        return CatchUp(debt.service, "started", started.backup.backup_name)
    debt = replace(
        debt, attempts=attempts, last_error=error, next_attempt_at=now + backoff(attempts)
    )
    debts.save(runtime, debt)
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
