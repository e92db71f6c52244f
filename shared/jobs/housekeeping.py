"""Housekeeping: settle running operations (one status request each, MAX_PARALLEL at
once) and stranded ledger rows, catch up owed backups, pay pending configuration changes
and start due change backups (docs/change-backups.md), prune, (once a day) delete ledger
history older than LEDGER_HISTORY_DAYS, and check the RPO (and unprotected changes).
Each step fails alone: a refused blob listing never silences the RPO alarm. An idle tick
costs the same whatever the ledger's history."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from shared import signals
from shared.jobs import catchup, changes, health
from shared.jobs.operations import LOCK_GRACE, poll_running, settle_ledger_row
from shared.rules.model import OperationKind, OperationRecord, Status
from shared.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class Report:
    settled: list[OperationRecord] = field(default_factory=list)
    stranded: list[str] = field(default_factory=list)
    prune: dict[str, Any] = field(default_factory=dict)
    history_deleted: int = 0
    catch_up: list[catchup.CatchUp] = field(default_factory=list)
    rpo_breaches: list[health.RpoBreach] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    unreadable_operations: list[str] = field(default_factory=list)
    change_backups: list[changes.ChangeStart] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        ended = ", ".join(
            f"{op.kind.value} {op.backup_name} {op.status.value}" for op in self.settled
        )
        pruned = len(self.prune.get("pruned", []))
        return (
            f"{len(self.settled)} operation(s) ended{': ' + ended if ended else ''}; "
            f"{len(self.stranded)} stranded ledger row(s) settled; {pruned} backup(s) pruned; "
            f"{self.history_deleted} history row(s) deleted; "
            f"{sum(c.outcome == 'started' for c in self.catch_up)} owed backup(s) started"
            f"{self._deferred()}; "
            f"{len(self.rpo_breaches)} RPO breach(es); "
            f"{sum(c.outcome == 'started' for c in self.change_backups)} change backup(s) "
            f"started, {len(self.unprotected)} change(s) unprotected too long"
            + (
                f"; {len(self.unreadable_operations)} unreadable operation row(s) skipped"
                if self.unreadable_operations
                else ""
            )
            + (
                f"; {len(self.failed_steps)} step(s) failed: {', '.join(self.failed_steps)}"
                if self.failed_steps
                else ""
            )
        )

    def _deferred(self) -> str:
        deferred = sum(c.outcome == "deferred" for c in self.catch_up)
        return f" ({deferred} deferred: the pass's budget was spent)" if deferred else ""


def run(runtime: Runtime) -> Report:
    """Every step, each failing alone: a step that raises is logged and signalled
    (HousekeepingStepFailed) and the next one runs; the RPO check, last, always does."""
    from shared.jobs import history  # on first use: a lighter cold start for the HTTP routes

    report = Report()
    polled: list[OperationRecord] | None = _step(report, "settle", lambda: poll_running(runtime))
    if polled is not None:  # (the operations table answered)
        report.unreadable_operations = sorted(runtime.operations.unreadable)
    report.settled = [op for op in polled or [] if not op.is_running]
    by_id = {op.operation_id: op for op in polled or []}
    report.stranded = _step(report, "stranded", lambda: settle_stranded_rows(runtime, by_id)) or []
    report.catch_up = _step(report, "catch-up", lambda: catchup.catch_up(runtime)) or []
    # Unpolled (the step failed): pruning reads the running restores itself.
    still = None if polled is None else [op for op in polled if op.is_running]
    report.change_backups = (
        _step(report, "changes", lambda: changes.settle_and_start(runtime, still)) or []
    )
    prune = _step(report, "prune", lambda: prune_now(runtime, dry_run=False, running=still))
    report.prune = prune or {}
    deleted = _step(report, "history", lambda: history.delete_old_rows(runtime))
    report.history_deleted = len(deleted.deleted) if deleted else 0
    report.rpo_breaches = _step(report, "rpo", lambda: health.check_rpo(runtime)) or []
    unprotected = _step(
        report, "unprotected", lambda: changes.check_unprotected(runtime, report.change_backups)
    )
    report.unprotected = unprotected or []
    return report


def _step[T](report: Report, name: str, work: Callable[[], T]) -> T | None:
    """``work()``, or None when it raised: logged, signalled (the step's name and the
    exception's class: never its message, which may quote a URL or a setting) and noted
    in the report."""
    try:
        return work()
    except Exception as exc:
        log.exception("Housekeeping step %s failed; the next steps run all the same", name)
        report.failed_steps.append(name)
        signals.emit(signals.Signal.HOUSEKEEPING_STEP_FAILED, step=name, error=type(exc).__name__)
        return None


def settle_stranded_rows(
    runtime: Runtime, polled: Mapping[str, OperationRecord] | None = None
) -> list[str]:
    """Running ledger rows that nothing will settle any more: their operation ended
    (a crash between its row and this one) or was never recorded (a crash before).

    ``polled``: the operations this tick has just polled, by id, so that their rows are
    not read a second time."""
    now = runtime.clock()
    limit = timedelta(minutes=runtime.settings.operation_timeout_minutes) + LOCK_GRACE
    repaired: list[str] = []
    polled = polled or {}
    for record in runtime.ledger.records(status=Status.RUNNING):
        operation = (
            polled.get(record.operation_id) or runtime.operations.get(record.operation_id)
            if record.operation_id
            else None
        )
        if operation is not None and operation.is_running:
            continue  # finish_running owns it
        if operation is None and now - record.created_at <= limit:
            continue  # its starter may still be writing
        try:
            if operation is not None:
                settle_ledger_row(runtime, operation)
            else:
                error = "Abandoned: the backup's operation was never recorded"
                runtime.ledger.save(
                    record.with_changes(status=Status.FAILED, error=error, completed_at=now)
                )
                signals.emit(
                    signals.Signal.BACKUP_FAILED,
                    service=record.service,
                    backupName=record.backup_name,
                    operationId=record.operation_id,
                    error=error,
                )
        except Exception:
            log.exception("Could not settle ledger row %s", record.backup_name)
            continue
        repaired.append(record.backup_name)
    return repaired


def prune_now(
    runtime: Runtime, *, dry_run: bool, running: Iterable[OperationRecord] | None = None
) -> dict[str, Any]:
    """One pruning pass (see shared.jobs.pruning); what went, what stayed, and why.

    ``running``: the operations known to be running (housekeeping has just polled them);
    by default, read now."""
    from shared.jobs import pruning  # on first use: a lighter cold start for the HTTP routes
    from shared.rules.reconcile import reconcile

    settings = runtime.settings
    now = runtime.clock()
    # A backup being restored right now is never pruned from under APIM, whatever its age.
    running = runtime.operations.running() if running is None else running
    in_use = {op.backup_name for op in running if op.kind is OperationKind.RESTORE}
    records, names, unreadable = pruning.gather(runtime.ledger, runtime.blobs)
    plan = reconcile(
        [r for r in records if r.backup_name not in in_use],
        names,
        now=now,
        retention_days=settings.retention_days,
        min_keep=settings.min_keep,
        account_name=settings.storage_account,
        container_name=settings.container,
        known_names=unreadable | in_use,
    )
    # A restore may have started since the first look: look again, just before deleting
    # (only when there is something to delete: an idle tick spares the request).
    deletes = plan.prune or plan.stale or any(o.delete for o in plan.orphans)
    late = (
        {op.backup_name for op in runtime.operations.running() if op.kind is OperationKind.RESTORE}
        if deletes
        else set()
    )
    if late - in_use:
        kept = tuple(d for d in plan.prune if d.record.backup_name in late)
        plan = replace(
            plan,
            prune=tuple(d for d in plan.prune if d.record.backup_name not in late),
            keep=plan.keep
            + tuple(replace(d, reason="kept: a restore is reading it") for d in kept),
        )
    result = pruning.prune(runtime.ledger, runtime.blobs, plan, now, dry_run=dry_run)
    for error in result.errors:
        log.warning("Pruning could not complete %s: %s", error.name, error.error)
    return result.to_json()
