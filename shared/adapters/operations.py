"""Table Storage: the operations table (OPERATIONS_TABLE): operations in flight and
ended, and each service's lock (a row created atomically, so of racing starters exactly
one proceeds)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.adapters.ledger import replace_unchanged
from shared.rules.model import OperationRecord, Status, utc

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = logging.getLogger(__name__)

LOCK_PARTITION = "lock"


class OperationStore:
    """Operations (backups and restores in APIM) and the per-service locks that serialise them.

    A lock is a row (PartitionKey ``lock``, RowKey the service's name). Creating it is
    atomic in Table Storage, so of any number of racing starters exactly one wins, on
    any number of hosts. A lock whose operation has ended (or never got recorded) is
    stale and may be taken over, again atomically through its ETag.
    """

    def __init__(self, table: TableClient) -> None:
        self.table = table
        self.unreadable: set[str] = set()  # the rows the last read of running() skipped

    def add(self, operation: OperationRecord) -> OperationRecord:
        meta = self.table.create_entity(operation.to_entity())
        return operation.with_changes(etag=meta.get("etag"))

    def get(self, operation_id: str) -> OperationRecord | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self.table.get_entity(OperationRecord.PARTITION, operation_id)
        except ResourceNotFoundError:
            return None
        return OperationRecord.from_entity(entity)

    def save(self, operation: OperationRecord) -> OperationRecord:
        """Replace the row if nobody changed it since we read it; Conflict otherwise."""
        etag = replace_unchanged(self.table, operation.to_entity(), operation.etag)
        return operation.with_changes(etag=etag)

    def delete(self, operation: OperationRecord) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(OperationRecord.PARTITION, operation.operation_id)

    def running(self) -> Iterator[OperationRecord]:
        rows = self.table.query_entities(
            "PartitionKey eq @pk and Status eq @status",
            parameters={"pk": OperationRecord.PARTITION, "status": Status.RUNNING.value},
        )
        # One row this version cannot read (a newer version's Kind, a hand edit) must not
        # stop housekeeping or health: it is logged, skipped, and kept in ``unreadable``.
        self.unreadable = skipped = set[str]()
        for entity in rows:
            try:
                yield OperationRecord.from_entity(entity)
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                log.warning(
                    "Operation row %s is unreadable: %s; skipped", entity.get("RowKey"), exc
                )
                skipped.add(str(entity.get("RowKey", "")))

    def restore_attempted(self, service: str, backup_name: str) -> bool:
        """Whether a restore of ``backup_name`` into ``service`` was ever started: a
        filter the service applies, so only matching rows travel (not every operation)."""
        rows = self.table.query_entities(
            "PartitionKey eq @pk and Kind eq @kind and Service eq @service and BackupName eq @name",
            parameters={
                "pk": OperationRecord.PARTITION,
                "kind": "restore",  # OperationKind.RESTORE
                "service": service,
                "name": backup_name,
            },
            select=["RowKey"],
        )
        return any(True for _ in rows)

    def restores(self) -> Iterator[OperationRecord]:
        """Every restore in the table (a filter the service applies: backups do not travel)."""
        rows = self.table.query_entities(
            "PartitionKey eq @pk and Kind eq @kind",
            parameters={"pk": OperationRecord.PARTITION, "kind": "restore"},
        )
        for entity in rows:
            yield OperationRecord.from_entity(entity)

    def all(self) -> Iterator[OperationRecord]:
        rows = self.table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": OperationRecord.PARTITION}
        )
        for entity in rows:
            yield OperationRecord.from_entity(entity)

    # Locks ---------------------------------------------------------------------------

    def lock_holder(self, service: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return str(self.table.get_entity(LOCK_PARTITION, service)["OperationId"])
        except ResourceNotFoundError:
            return None

    def acquire(self, service: str, operation_id: str, now: datetime, grace: timedelta) -> bool:
        """Take the service's lock for ``operation_id``; False when a live operation holds it.

        ``grace`` covers a starter that took the lock but has not yet written its
        operation row: such a lock is only stale once it is older than ``grace``.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.data.tables import UpdateMode

        row = {
            "PartitionKey": LOCK_PARTITION,
            "RowKey": service,
            "OperationId": operation_id,
            "AcquiredAt": utc(now),
        }
        try:
            self.table.create_entity(row)
            return True
        except ResourceExistsError:
            pass
        try:
            current = self.table.get_entity(LOCK_PARTITION, service)
        except ResourceNotFoundError:
            return self._create_quietly(row)
        holder = self.get(str(current["OperationId"]))
        if holder is not None and holder.is_running:
            return False
        if holder is None and utc(current["AcquiredAt"]) > now - grace:
            return False
        log.warning(
            "Taking over the stale lock of %s from operation %s", service, current["OperationId"]
        )
        try:
            self.table.update_entity(
                row,
                mode=UpdateMode.REPLACE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceNotFoundError:
            return self._create_quietly(row)  # released meanwhile: the lock is free
        except ResourceModifiedError:
            return False
        return True

    def _create_quietly(self, row: dict[str, Any]) -> bool:
        from azure.core.exceptions import ResourceExistsError

        try:
            self.table.create_entity(row)
        except ResourceExistsError:
            return False
        return True

    def release(self, service: str, operation_id: str) -> None:
        """Drop the lock if ``operation_id`` still holds it (never someone else's)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        try:
            current = self.table.get_entity(LOCK_PARTITION, service)
        except ResourceNotFoundError:
            return
        if current["OperationId"] != operation_id:
            return
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self.table.delete_entity(
                LOCK_PARTITION,
                service,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
