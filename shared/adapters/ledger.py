"""Table Storage: the backup ledger (BACKUP_TABLE), and the row helpers every table
adapter shares (ETag-guarded replace and delete, table creation). The operations table
is shared.adapters.operations."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.adapters.transactions import (
    Deletions,
    RowDelete,
    RowUpdate,
    delete_rows,
    update_rows,
)
from shared.rules.model import BackupRecord, Status, utc
from shared.rules.naming import parse_backup_name

if TYPE_CHECKING:
    from azure.data.tables import TableClient

    from shared.rules.reconcile import RowChange

# The SDK (azure.core, azure.data.tables) is imported inside each function that needs
# it: importing the function app must not load it (a lighter cold start).

log = logging.getLogger(__name__)


class Conflict(Exception):
    """A row changed, or appeared, between our read and our write."""


def ensure_table(table: TableClient) -> None:
    """Create the table if missing (Azurite starts empty; in Azure, infra/ creates it).
    An identity whose role covers only the table may not create tables: that is fine."""
    from azure.core.exceptions import HttpResponseError, ResourceExistsError

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
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

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


def delete_unchanged(table: TableClient, partition: str, row: str, etag: str | None) -> None:
    """Delete a row only if its ETag is still ``etag``; one already gone or changed since
    it was read stays as it is."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError, ResourceModifiedError):
        table.delete_entity(
            partition, row, etag=etag, match_condition=MatchConditions.IfNotModified
        )


class BackupLedger:
    """The ledger: one row per backup, partitioned by service name.

    A RowKey is the backup's name, ``<service>-<YYYYMMDD>T<HHMMSS>Z.apimbackup``, so in a
    partition RowKey order is time order: "backups of this service since X" is a key
    range, which Table Storage answers through its index however long the history is.
    Queries that must cross partitions filter server-side, so that only the rows that
    can still matter travel, page by page (never the whole ledger in memory).
    """

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def add(self, record: BackupRecord) -> BackupRecord:
        """Insert a new row; Conflict when a row of that name exists already."""
        from azure.core.exceptions import ResourceExistsError

        try:
            meta = self.table.create_entity(record.to_entity())
        except ResourceExistsError:
            raise Conflict(record.backup_name) from None
        return record.with_changes(etag=meta.get("etag"))

    def get(self, service: str, backup_name: str) -> BackupRecord | None:
        from azure.core.exceptions import ResourceNotFoundError

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
        delete_unchanged(self.table, record.service, record.backup_name, record.etag)

    def records(
        self,
        service: str | None = None,
        status: Status | None = None,
        since: datetime | None = None,
    ) -> Iterator[BackupRecord]:
        """Rows, optionally of one service, one status, and started at ``since`` or later
        (a RowKey range within a service; a CreatedAt filter across services)."""
        params: dict[str, Any] = {}
        clauses = []
        if service is not None:
            clauses.append("PartitionKey eq @pk")
            params["pk"] = service
            if since is not None:
                clauses.append("RowKey ge @first")
                params["first"] = row_key_at(service, since)
        elif since is not None:
            clauses.append("CreatedAt ge @since")
            params["since"] = utc(since)
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

    def since(
        self, service: str, moment: datetime, status: Status | None = None
    ) -> Iterator[BackupRecord]:
        """The service's backups started at ``moment`` or later: a RowKey range."""
        query = "PartitionKey eq @pk and RowKey ge @first"
        params: dict[str, Any] = {"pk": service, "first": row_key_at(service, moment)}
        if status is not None:
            query += " and Status eq @status"
            params["status"] = status.value
        for entity in self.table.query_entities(query, parameters=params):
            yield BackupRecord.from_entity(entity)

    def history_before(self, service: str, cutoff: datetime) -> Iterator[BackupRecord]:
        """The service's Pruned and Failed rows started before ``cutoff``: a RowKey range."""
        query = (
            "PartitionKey eq @pk and RowKey lt @cutoff and "
            f"(Status eq '{Status.PRUNED.value}' or Status eq '{Status.FAILED.value}')"
        )
        params = {"pk": service, "cutoff": row_key_at(service, cutoff)}
        for entity in self.table.query_entities(query, parameters=params):
            yield BackupRecord.from_entity(entity)

    # Many rows at once: pruning and the history pass ---------------------------------

    def live_rows(self) -> tuple[list[BackupRecord], set[str]]:
        """Every row not yet Pruned (Running, Succeeded, Failed: one filtered, paged query):
        the readable ones, and the RowKeys of the rest.

        Bounded by retention, not by history: pruning turns Succeeded and Failed rows
        into Pruned ones within RETENTION_DAYS, and only Pruned rows accumulate.
        """
        return readable(
            self.table.query_entities(
                "Status ne @pruned", parameters={"pruned": Status.PRUNED.value}
            )
        )

    def rows_named(self, names: Iterable[str]) -> tuple[list[BackupRecord], set[str]]:
        """The rows of these backups, one point read each; a name with no row is left out."""
        from azure.core.exceptions import ResourceNotFoundError

        entities: list[dict[str, Any]] = []
        for name in names:
            try:
                entities.append(self.table.get_entity(parse_backup_name(name).service, name))
            except ResourceNotFoundError:
                continue
        return readable(entities)

    def update_rows(self, changes: Sequence[RowChange]) -> dict[str, str]:
        """Merge each change into its row, in transactions (:mod:`.transactions`), each
        conditional on the row's ETag; the backup names not updated, with why."""
        return update_rows(
            self.table,
            [
                RowUpdate(c.record.service, c.record.backup_name, c.record.etag, c.changes)
                for c in changes
            ],
        )

    def delete_rows(self, records: Iterable[BackupRecord]) -> Deletions:
        """Delete the rows, consumed as they come, in transactions (:mod:`.transactions`),
        each conditional on the row's ETag."""
        return delete_rows(
            self.table, (RowDelete(r.service, r.backup_name, r.etag) for r in records)
        )


def readable(entities: Iterable[dict[str, Any]]) -> tuple[list[BackupRecord], set[str]]:
    """The rows that read as backups, and the RowKeys of those that do not (logged): one
    bad row must not stop retention for everything else."""
    records: list[BackupRecord] = []
    unreadable: set[str] = set()
    for entity in entities:
        try:
            records.append(BackupRecord.from_entity(entity))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            log.warning(
                "Ledger row %s/%s is unreadable: %s",
                entity.get("PartitionKey"),
                entity.get("RowKey"),
                exc,
            )
            unreadable.add(str(entity.get("RowKey", "")))
    return records, unreadable


def row_key_at(service: str, moment: datetime) -> str:
    """The RowKey prefix of a backup of ``service`` started at ``moment`` (to the second):
    every backup started at or after ``moment`` sorts at or after it, every earlier one
    before it."""
    return f"{service}-{utc(moment):%Y%m%dT%H%M%SZ}"
