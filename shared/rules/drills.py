"""Restore drills: standby sync is the drill. Each standby-sync restore that ends leaves
the pair's *last drill* (a row of the operations table, PartitionKey ``drill``, RowKey
``<source>=><standby>``): which backup, into which target, when, how long (the RTO the
drill measured), the drift found, the outcome, and when a drill of the pair last
succeeded. Health shows it, and warns when no drill has succeeded within
``DRILL_WARNING_DAYS`` (docs/reliability.md, "Restore drills"). Plain values and the
warning rule, no I/O: the rows are read and written by
:class:`~shared.adapters.drills.DrillStore`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from shared.rules.model import OperationKind, OperationRecord, Status, Trigger, iso, utc


def pair_key(source: str, standby: str) -> str:
    return f"{source}=>{standby}"


def is_drill(operation: OperationRecord) -> bool:
    """A standby-sync restore that has ended."""
    return (
        operation.kind is OperationKind.RESTORE
        and operation.trigger is Trigger.STANDBY
        and not operation.is_running
        and operation.completed_at is not None
    )


@dataclass(frozen=True)
class Drill:
    """A pair's last drill, and when one last succeeded."""

    PARTITION: ClassVar[str] = "drill"

    source: str
    target: str
    backup_name: str
    operation_id: str
    started_at: datetime
    completed_at: datetime
    status: Status
    drift_count: int | None
    last_succeeded_at: datetime | None

    @property
    def duration_seconds(self) -> float:
        return round((self.completed_at - self.started_at).total_seconds(), 1)

    @classmethod
    def of(cls, operation: OperationRecord, previous: Drill | None) -> Drill:
        """The pair's last drill once ``operation`` (an ended drill) is counted."""
        if not is_drill(operation) or operation.completed_at is None:
            raise ValueError(f"operation {operation.operation_id} is not an ended drill")
        succeeded = operation.status is Status.SUCCEEDED
        last = operation.completed_at if succeeded else None
        if last is None and previous is not None:
            last = previous.last_succeeded_at
        drift = operation.drift if succeeded else None
        return cls(
            source=operation.source_service,
            target=operation.service,
            backup_name=operation.backup_name,
            operation_id=operation.operation_id,
            started_at=operation.created_at,
            completed_at=operation.completed_at,
            status=operation.status,
            drift_count=None if drift is None else len(drift),
            last_succeeded_at=last,
        )

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.PARTITION,
            "RowKey": pair_key(self.source, self.target),
            "Source": self.source,
            "Target": self.target,
            "BackupName": self.backup_name,
            "OperationId": self.operation_id,
            "StartedAt": utc(self.started_at),
            "CompletedAt": utc(self.completed_at),
            "Status": self.status.value,
        }
        if self.drift_count is not None:
            entity["DriftCount"] = self.drift_count
        if self.last_succeeded_at is not None:
            entity["LastSucceededAt"] = utc(self.last_succeeded_at)
        return entity

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> Drill:
        last = entity.get("LastSucceededAt")
        drift = entity.get("DriftCount")
        return cls(
            source=str(entity["Source"]),
            target=str(entity["Target"]),
            backup_name=str(entity.get("BackupName", "")),
            operation_id=str(entity.get("OperationId", "")),
            started_at=utc(entity["StartedAt"]),
            completed_at=utc(entity["CompletedAt"]),
            status=Status(entity["Status"]),
            drift_count=None if drift is None else int(drift),
            last_succeeded_at=None if last is None else utc(last),
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "backupName": self.backup_name,
            "operationId": self.operation_id,
            "startedAt": iso(self.started_at),
            "completedAt": iso(self.completed_at),
            "durationSeconds": self.duration_seconds,
            "driftCount": self.drift_count,
            "status": self.status.value,
        }


def drill_warning(
    now: datetime, drill: Drill | None, configured_since: datetime | None, days: int
) -> str | None:
    """Why the pair needs attention, or None: no drill has succeeded within ``days``.
    A pair never drilled is given ``days`` from when its source was first seen (None:
    not known yet, so now), as a new service is given RPO_HOURS for its first backup."""
    window = timedelta(days=days)
    if drill is not None and drill.last_succeeded_at is not None:
        if now - drill.last_succeeded_at <= window:
            return None
        return f"no restore drill has succeeded since {iso(drill.last_succeeded_at)}"
    if now - (configured_since or now) <= window:
        return None
    return f"no restore drill has succeeded in the last {days} days"
