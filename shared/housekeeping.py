"""Housekeeping: settle running operations (one status request each), then prune."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from shared import pruning, schedule, signals
from shared.model import OperationKind, OperationRecord, Status
from shared.operations import LOCK_GRACE, finish_running, settle_ledger_row
from shared.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class Report:
    settled: list[OperationRecord] = field(default_factory=list)
    stranded: list[str] = field(default_factory=list)
    prune: dict[str, Any] = field(default_factory=dict)
    catch_up: list[schedule.CatchUp] = field(default_factory=list)
    rpo_breaches: list[schedule.RpoBreach] = field(default_factory=list)

    def summary(self) -> str:
        ended = ", ".join(
            f"{op.kind.value} {op.backup_name} {op.status.value}" for op in self.settled
        )
        pruned = len(self.prune.get("pruned", []))
        return (
            f"{len(self.settled)} operation(s) ended{': ' + ended if ended else ''}; "
            f"{len(self.stranded)} stranded ledger row(s) settled; {pruned} backup(s) pruned; "
            f"{sum(c.outcome == 'started' for c in self.catch_up)} owed backup(s) started; "
            f"{len(self.rpo_breaches)} RPO breach(es)"
        )


def run(runtime: Runtime) -> Report:
    report = Report(settled=finish_running(runtime))
    report.stranded = settle_stranded_rows(runtime)
    report.catch_up = schedule.catch_up(runtime)
    report.prune = prune_now(runtime, dry_run=False)
    report.rpo_breaches = schedule.check_rpo(runtime)
    return report


def settle_stranded_rows(runtime: Runtime) -> list[str]:
    """Running ledger rows that nothing will settle any more: their operation ended
    (a crash between its row and this one) or was never recorded (a crash before)."""
    now = runtime.clock()
    limit = timedelta(minutes=runtime.settings.operation_timeout_minutes) + LOCK_GRACE
    repaired: list[str] = []
    for record in runtime.ledger.records(status=Status.RUNNING):
        operation = runtime.operations.get(record.operation_id) if record.operation_id else None
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


def prune_now(runtime: Runtime, *, dry_run: bool) -> dict[str, Any]:
    """One pruning pass (see shared.pruning); what went, what stayed, and why."""
    settings = runtime.settings
    now = runtime.clock()
    records, unreadable = pruning.read_ledger(runtime.ledger.table)
    # A backup being restored right now is never pruned from under APIM, whatever its age.
    running = runtime.operations.running()
    in_use = {op.backup_name for op in running if op.kind is OperationKind.RESTORE}
    container = runtime.blobs.container
    plan = pruning.reconcile(
        [r for r in records if r.backup_name not in in_use],
        pruning.list_blob_names(container),
        now=now,
        retention_days=settings.retention_days,
        min_keep=settings.min_keep,
        container_name=settings.container,
        known_names=unreadable | in_use,
    )
    # A restore may have started since the first look: look again, just before deleting.
    late = {
        op.backup_name for op in runtime.operations.running() if op.kind is OperationKind.RESTORE
    }
    if late - in_use:
        kept = tuple(d for d in plan.prune if d.record.backup_name in late)
        plan = replace(
            plan,
            prune=tuple(d for d in plan.prune if d.record.backup_name not in late),
            keep=plan.keep
            + tuple(replace(d, reason="kept: a restore is reading it") for d in kept),
        )
    result = pruning.prune(runtime.ledger.table, container, plan, now, dry_run=dry_run)
    for error in result.errors:
        log.warning("Pruning could not complete %s: %s", error.name, error.error)
    return result.to_json()
