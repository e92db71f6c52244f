"""The operations table's history: ended operation rows deleted once old, and the mark
that says which UTC day the history pass last ran (docs/ledger.md).

Beside :class:`~shared.adapters.ledger.OperationStore` (running operations and their
locks), over the same table: what :mod:`shared.jobs.history` needs of it once a day.
The ledger's own old rows are read and deleted through
:class:`~shared.adapters.ledger.BackupLedger`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from shared.adapters.operations import OperationStore
from shared.adapters.transactions import Deletions, RowDelete, delete_rows
from shared.rules.model import OperationRecord, Status, utc

MARKER_PARTITION = "housekeeping"
MARKER_ROW = "ledgerHistory"


class OperationHistory:
    def __init__(self, store: OperationStore) -> None:
        self.table = store.table

    def marked_day(self) -> str | None:
        """The UTC day (``YYYY-MM-DD``) of the last history pass; None before the first."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return str(self.table.get_entity(MARKER_PARTITION, MARKER_ROW).get("Day"))
        except ResourceNotFoundError:
            return None

    def mark_day(self, day: str, at: datetime) -> None:
        """Record that the history pass of ``day`` ran (at ``at``)."""
        self.table.upsert_entity(
            {"PartitionKey": MARKER_PARTITION, "RowKey": MARKER_ROW, "Day": day, "At": at}
        )

    def delete_ended_before(self, cutoff: datetime) -> Deletions:
        """Delete the operation rows (backups and restores) created before ``cutoff`` that
        have ended, in transactions as the query's pages come, each conditional on the
        row's ETag. Running ones stay."""
        return delete_rows(self.table, self._ended_before(utc(cutoff)))

    def _ended_before(self, cutoff: datetime) -> Iterator[RowDelete]:
        rows = self.table.query_entities(
            "PartitionKey eq @pk and CreatedAt lt @cutoff and Status ne @running",
            parameters={
                "pk": OperationRecord.PARTITION,
                "cutoff": cutoff,
                "running": Status.RUNNING.value,
            },
            select=["PartitionKey", "RowKey", "CreatedAt", "Status"],
        )
        for entity in rows:
            created = entity.get("CreatedAt")
            if not isinstance(created, datetime) or utc(created) >= cutoff:
                continue  # the query's job; checked again, as deleting is for good
            if entity.get("Status") == Status.RUNNING.value:
                continue
            yield RowDelete(OperationRecord.PARTITION, str(entity["RowKey"]), _etag(entity))


def _etag(entity: Any) -> str | None:
    metadata = getattr(entity, "metadata", None) or {}
    etag = metadata.get("etag")
    return str(etag) if etag else None
