"""Table Storage adapters: the backup ledger, and the operations table (operations + locks)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from shared.model import BackupRecord, OperationRecord, Status, utc

log = logging.getLogger(__name__)


class Conflict(Exception):
    """A row changed, or appeared, between our read and our write."""


def ensure_table(table: TableClient) -> None:
    """Create the table if missing (Azurite starts empty; in Azure, infra/ creates it).
    An identity whose role covers only the table may not create tables: that is fine."""
    try:
        table.create_table()
    except ResourceExistsError:
        pass
    except HttpResponseError as exc:
        if exc.status_code != 403:
            raise
        log.info("May not create table %s (403); assuming it exists", table.table_name)


def replace_unchanged(table: TableClient, entity: dict[str, Any], etag: str | None) -> str | None:
    """Replace a row only if its ETag is still ``etag``; Conflict when it changed or went.
    The new ETag."""
    try:
        meta = table.update_entity(
            entity,
            mode=UpdateMode.REPLACE,
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
        )
    except (ResourceModifiedError, ResourceNotFoundError):
        raise Conflict(f"{entity['PartitionKey']}/{entity['RowKey']}") from None
    etag_after: str | None = meta.get("etag")
    return etag_after


class BackupLedger:
    """The ledger: one row per backup, partitioned by service name."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def add(self, record: BackupRecord) -> BackupRecord:
        """Insert a new row; Conflict when a row of that name exists already."""
        try:
            meta = self.table.create_entity(record.to_entity())
        except ResourceExistsError:
            raise Conflict(record.backup_name) from None
        return record.with_changes(etag=meta.get("etag"))

    def get(self, service: str, backup_name: str) -> BackupRecord | None:
        try:
            return BackupRecord.from_entity(self.table.get_entity(service, backup_name))
        except ResourceNotFoundError:
            return None

    def save(self, record: BackupRecord) -> BackupRecord:
        """Replace the row if nobody changed it since we read it; Conflict otherwise."""
        return record.with_changes(
            etag=replace_unchanged(self.table, record.to_entity(), record.etag)
        )

    def delete(self, record: BackupRecord) -> None:
        with contextlib.suppress(ResourceNotFoundError, ResourceModifiedError):
            self.table.delete_entity(
                record.service,
                record.backup_name,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )

    def records(
        self, service: str | None = None, status: Status | None = None
    ) -> Iterator[BackupRecord]:
        params: dict[str, Any] = {}
        clauses = []
        if service is not None:
            clauses.append("PartitionKey eq @pk")
            params["pk"] = service
        if status is not None:
            clauses.append("Status eq @status")
            params["status"] = status.value
        entities = (
            self.table.query_entities(" and ".join(clauses), parameters=params)
            if clauses
            else self.table.list_entities()
        )
        for entity in entities:
            yield BackupRecord.from_entity(entity)


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

    def add(self, operation: OperationRecord) -> OperationRecord:
        meta = self.table.create_entity(operation.to_entity())
        return operation.with_changes(etag=meta.get("etag"))

    def get(self, operation_id: str) -> OperationRecord | None:
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
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(OperationRecord.PARTITION, operation.operation_id)

    def running(self) -> Iterator[OperationRecord]:
        rows = self.table.query_entities(
            "PartitionKey eq @pk and Status eq @status",
            parameters={"pk": OperationRecord.PARTITION, "status": Status.RUNNING.value},
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
        try:
            return str(self.table.get_entity(LOCK_PARTITION, service)["OperationId"])
        except ResourceNotFoundError:
            return None

    def acquire(self, service: str, operation_id: str, now: datetime, grace: timedelta) -> bool:
        """Take the service's lock for ``operation_id``; False when a live operation holds it.

        ``grace`` covers a starter that took the lock but has not yet written its
        operation row: such a lock is only stale once it is older than ``grace``.
        """
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
        try:
            self.table.create_entity(row)
        except ResourceExistsError:
            return False
        return True

    def release(self, service: str, operation_id: str) -> None:
        """Drop the lock if ``operation_id`` still holds it (never someone else's)."""
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
