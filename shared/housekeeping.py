"""Housekeeping: settle running operations (one status request each), then prune."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.model import OperationRecord, Status
from shared.operations import LOCK_GRACE, finish_running
from shared.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class Report:
    settled: list[OperationRecord] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    prune: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        ended = ", ".join(
            f"{op.kind.value} {op.backup_name} {op.status.value}" for op in self.settled
        )
        pruned = len(self.prune.get("pruned", []))
        return (
            f"{len(self.settled)} operation(s) ended{': ' + ended if ended else ''}; "
            f"{len(self.abandoned)} abandoned ledger row(s) failed; {pruned} backup(s) pruned"
        )


def run(runtime: Runtime) -> Report:
    report = Report(settled=finish_running(runtime))
    report.abandoned = fail_abandoned_rows(runtime)
    report.prune = prune_now(runtime, dry_run=False)
    return report


def fail_abandoned_rows(runtime: Runtime) -> list[str]:
    """Running ledger rows whose operation never got recorded (a crash between the two
    writes) would otherwise say Running forever."""
    now = runtime.clock()
    limit = timedelta(minutes=runtime.settings.operation_timeout_minutes) + LOCK_GRACE
    failed: list[str] = []
    for record in runtime.ledger.records(status=Status.RUNNING):
        if now - record.created_at <= limit:
            continue
        operation = runtime.operations.get(record.operation_id) if record.operation_id else None
        if operation is not None and operation.is_running:
            continue  # finish_running owns it
        error = (
            operation.error
            if operation is not None and operation.error
            else (
                "Abandoned: the backup's operation was never recorded, or ended without "
                "settling this row"
            )
        )
        try:
            runtime.ledger.save(
                record.with_changes(status=Status.FAILED, error=error, completed_at=now)
            )
        except Exception:
            log.exception("Could not mark %s failed", record.backup_name)
            continue
        failed.append(record.backup_name)
    return failed


def prune_now(runtime: Runtime, *, dry_run: bool) -> dict[str, Any]:
    from shared import pruning, retention

    raise NotImplementedError((pruning, retention, dry_run))
