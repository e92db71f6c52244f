"""Plain data: ledger rows (backups) and operation rows (backups and restores in flight).

No SDK in here beyond mapping to and from table entities (plain dicts).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, overload

# An APIM backup can be restored for 30 days after it was made (APIM's own rule).
BACKUP_LIFETIME = timedelta(days=30)


class Status(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    PRUNED = "Pruned"


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    HTTP = "http"
    CLI = "cli"
    STANDBY = "standby"
    CHANGE = "change"  # a configuration change, debounced (docs/change-backups.md)


class OperationKind(StrEnum):
    BACKUP = "backup"
    RESTORE = "restore"


def utc(moment: datetime) -> datetime:
    """A timezone-aware UTC datetime; refuses naive ones rather than guessing."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time in the ledger is timezone-aware UTC")
    return moment.astimezone(UTC)


@overload
def iso(moment: datetime) -> str: ...
@overload
def iso(moment: None) -> None: ...
def iso(moment: datetime | None) -> str | None:
    """A moment as every answer and message of the product writes it: ISO 8601 in UTC,
    ``Z`` for the zone (None stays None)."""
    return None if moment is None else utc(moment).isoformat().replace("+00:00", "Z")


def _opt_time(value: Any) -> datetime | None:
    return utc(value) if isinstance(value, datetime) else None


@dataclass(frozen=True)
class BackupRecord:
    """One row of the ledger: one backup."""

    service: str  # PartitionKey: service name, lower case
    backup_name: str  # RowKey, and the blob's name
    service_id: str
    storage_account: str
    container: str
    status: Status
    trigger: Trigger
    created_at: datetime
    sku: str
    operation_id: str = ""
    operation_url: str = ""
    completed_at: datetime | None = None
    size_bytes: int | None = None
    error: str | None = None
    pruned_at: datetime | None = None
    manifest_blob: str | None = (
        None  # the settings manifest beside the backup (shared.rules.manifest)
    )
    manifest_error: str | None = None  # why there is none
    certificates: tuple[dict[str, Any], ...] = ()  # the manifest's certificate metadata
    changes: tuple[str, ...] = ()  # a change backup: what changed (shared.rules.debounce)
    etag: str | None = field(default=None, compare=False)

    @property
    def blob_name(self) -> str:
        return self.backup_name

    @property
    def expires_at(self) -> datetime:
        return self.created_at + BACKUP_LIFETIME

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def is_restorable(self, now: datetime) -> bool:
        return self.status is Status.SUCCEEDED and not self.is_expired(now)

    def with_changes(self, **changes: Any) -> BackupRecord:
        return replace(self, **changes)

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.service,
            "RowKey": self.backup_name,
            "ServiceId": self.service_id,
            "StorageAccount": self.storage_account,
            "Container": self.container,
            "BlobName": self.blob_name,
            "Status": self.status.value,
            "Trigger": self.trigger.value,
            "CreatedAt": utc(self.created_at),
            "ExpiresAt": utc(self.expires_at),
            "Sku": self.sku,
            "OperationId": self.operation_id,
            "OperationUrl": self.operation_url,
        }
        if self.completed_at is not None:
            entity["CompletedAt"] = utc(self.completed_at)
        if self.size_bytes is not None:
            entity["SizeBytes"] = (self.size_bytes, "Edm.Int64")  # the table API's typed value
        if self.error is not None:
            entity["Error"] = self.error
        if self.pruned_at is not None:
            entity["PrunedAt"] = utc(self.pruned_at)
        if self.manifest_blob is not None:
            entity["ManifestBlob"] = self.manifest_blob
        if self.manifest_error is not None:
            entity["ManifestError"] = self.manifest_error
        if self.certificates:
            entity["ManifestCertificates"] = json.dumps(list(self.certificates))
        if self.changes:
            entity["Changes"] = json.dumps(list(self.changes))
        return entity

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> BackupRecord:
        size = entity.get("SizeBytes")
        if size is not None and not isinstance(size, int):
            size = int(size.value if hasattr(size, "value") else size)
        metadata = getattr(entity, "metadata", None) or {}
        return cls(
            service=entity["PartitionKey"],
            backup_name=entity["RowKey"],
            service_id=entity.get("ServiceId", ""),
            storage_account=entity.get("StorageAccount", ""),
            container=entity.get("Container", ""),
            status=Status(entity["Status"]),
            trigger=Trigger(entity.get("Trigger", Trigger.SCHEDULE.value)),
            created_at=utc(entity["CreatedAt"]),
            sku=entity.get("Sku", ""),
            operation_id=entity.get("OperationId", ""),
            operation_url=entity.get("OperationUrl", ""),
            completed_at=_opt_time(entity.get("CompletedAt")),
            size_bytes=size,
            error=entity.get("Error"),
            pruned_at=_opt_time(entity.get("PrunedAt")),
            manifest_blob=entity.get("ManifestBlob") or None,
            manifest_error=entity.get("ManifestError"),
            certificates=_json_items(entity.get("ManifestCertificates")),
            changes=_json_strings(entity.get("Changes")),
            etag=metadata.get("etag"),
        )

    def to_api(self, now: datetime) -> dict[str, Any]:
        """The item shape of ``GET /api/backups``."""
        return {
            "backupName": self.backup_name,
            "service": self.service,
            "serviceId": self.service_id,
            "status": self.status.value,
            "trigger": self.trigger.value,
            "createdAt": iso(self.created_at),
            "expiresAt": iso(self.expires_at),
            "completedAt": iso(self.completed_at),
            "sizeBytes": self.size_bytes,
            "sku": self.sku,
            "restorable": self.is_restorable(now),
            "error": self.error,
            "manifestBlob": self.manifest_blob,
            **({"changes": list(self.changes)} if self.changes else {}),
        }


def _creation_order(record: BackupRecord) -> tuple[datetime, str]:
    """Backups in the order they were made: by creation time, the name breaking ties, so
    that "newest" never depends on the order the rows were read in."""
    return record.created_at, record.backup_name


def newest_first(records: Iterable[BackupRecord]) -> list[BackupRecord]:
    return sorted(records, key=_creation_order, reverse=True)


def newest(records: Iterable[BackupRecord]) -> BackupRecord | None:
    """The most recently made of ``records`` (None if there are none)."""
    return max(records, key=_creation_order, default=None)


def newest_restorable(records: Iterable[BackupRecord], now: datetime) -> BackupRecord | None:
    """The newest of ``records`` that can be restored at ``now``: what health and the RPO
    check measure, and what a standby sync restores."""
    return newest(r for r in records if r.is_restorable(now))


@dataclass(frozen=True)
class OperationRecord:
    """A backup or restore started in APIM, tracked until it ends (OPERATIONS_TABLE)."""

    operation_id: str
    kind: OperationKind
    service: str  # the service the operation runs on (a restore's target), lower case
    service_id: str
    backup_name: str
    status: Status
    trigger: Trigger
    created_at: datetime
    operation_url: str = ""
    source_service: str = ""  # for a restore: the backup's service
    completed_at: datetime | None = None
    error: str | None = None
    # A succeeded restore: how the target differs from the backup's manifest (shared.jobs.drift)
    drift: tuple[dict[str, str | None], ...] | None = None
    drift_error: str | None = None  # why no drift could be computed
    # True from before APIM is called until it answers an operation URL: a row still
    # unconfirmed after that may or may not have started in APIM (a lost answer, a crash)
    # and is settled from evidence (shared.rules.evidence), never by a blind timeout.
    unconfirmed: bool = False
    start_error: str | None = None  # why the start is unconfirmed, when known
    etag: str | None = field(default=None, compare=False)

    PARTITION = "operation"

    @property
    def is_running(self) -> bool:
        return self.status is Status.RUNNING

    @property
    def duration_seconds(self) -> float | None:
        """How long the operation took, from its row's times (one decimal); None while
        it runs. A restore's is the RTO it measured."""
        if self.completed_at is None:
            return None
        return round((self.completed_at - self.created_at).total_seconds(), 1)

    def with_changes(self, **changes: Any) -> OperationRecord:
        return replace(self, **changes)

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.PARTITION,
            "RowKey": self.operation_id,
            "Kind": self.kind.value,
            "Service": self.service,
            "ServiceId": self.service_id,
            "BackupName": self.backup_name,
            "Status": self.status.value,
            "Trigger": self.trigger.value,
            "CreatedAt": utc(self.created_at),
            "OperationUrl": self.operation_url,
            "SourceService": self.source_service,
        }
        if self.completed_at is not None:
            entity["CompletedAt"] = utc(self.completed_at)
        if self.error is not None:
            entity["Error"] = self.error
        if self.drift is not None:
            entity["Drift"] = json.dumps(list(self.drift))
        if self.drift_error is not None:
            entity["DriftError"] = self.drift_error
        if self.unconfirmed:
            entity["Unconfirmed"] = True
        if self.start_error is not None:
            entity["StartError"] = self.start_error
        return entity

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> OperationRecord:
        metadata = getattr(entity, "metadata", None) or {}
        return cls(
            operation_id=entity["RowKey"],
            kind=OperationKind(entity["Kind"]),
            service=entity["Service"],
            service_id=entity.get("ServiceId", ""),
            backup_name=entity.get("BackupName", ""),
            status=Status(entity["Status"]),
            trigger=Trigger(entity.get("Trigger", Trigger.HTTP.value)),
            created_at=utc(entity["CreatedAt"]),
            operation_url=entity.get("OperationUrl", ""),
            source_service=entity.get("SourceService", ""),
            completed_at=_opt_time(entity.get("CompletedAt")),
            error=entity.get("Error"),
            drift=_json_items(entity.get("Drift")) if "Drift" in entity else None,
            drift_error=entity.get("DriftError"),
            unconfirmed=entity.get("Unconfirmed") is True,
            start_error=entity.get("StartError"),
            etag=metadata.get("etag"),
        )

    def to_api(self, status_url: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "operationId": self.operation_id,
            "kind": self.kind.value,
            "backupName": self.backup_name,
            "service": self.service,
            "status": self.status.value,
            "statusUrl": status_url,
            "createdAt": iso(self.created_at),
            "completedAt": iso(self.completed_at),
            "durationSeconds": self.duration_seconds,
        }
        if self.kind is OperationKind.RESTORE:
            body["sourceService"] = self.source_service
            if self.status is Status.SUCCEEDED:
                body["drift"] = None if self.drift is None else list(self.drift)
                body["driftError"] = self.drift_error
        if self.error is not None:
            body["error"] = {"code": "OperationFailed", "message": self.error}
        return body


def _json_strings(text: Any) -> tuple[str, ...]:
    """A JSON column holding a list of strings; empty when missing or unreadable."""
    try:
        items = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return ()
    return tuple(str(i) for i in items if isinstance(i, str)) if isinstance(items, list) else ()


def _json_items(text: Any) -> tuple[dict[str, Any], ...]:
    """A JSON column holding a list of objects; empty when missing or unreadable."""
    try:
        items = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return ()
    return tuple(i for i in items if isinstance(i, dict)) if isinstance(items, list) else ()
