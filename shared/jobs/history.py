"""Ledger history: ``Pruned`` rows, and ``Failed`` rows without a blob, older than
LEDGER_HISTORY_DAYS are deleted, so the audit trail is bounded (about 13 months by
default) and nothing the product reads grows with time.

The pass runs at most once a UTC day (housekeeping calls it every tick): the day of
the last pass is kept in memory and in a marker row of the operations table, so an
idle tick pays nothing for it and a fresh instance one point read. Per configured
service it reads a RowKey range (``RowKey lt <service>-<cutoff>``: backups started
before the cutoff, through the table's index) filtered to Pruned and Failed rows,
page by page, and deletes in transactions of 100 (one partition each), each delete
conditional on the row's ETag: a row that changed since it was read stays.

The same pass deletes ended operation rows (backups and restores in OPERATIONS_TABLE)
created before the cutoff: a partition scan with a server-side filter, once a day.
Running operations, locks and other bookkeeping rows are never touched.

A ledger row whose blob still exists is never deleted, whatever its status: the
container's listing (one paged request, bounded by retention) is read before the
rows, and a backup that old can no longer be written by APIM. Pruning deletes such
a leftover blob first; the next day's pass then deletes the row.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.adapters.transactions import TABLE_BATCH_SIZE
from shared.rules.model import BackupRecord, Status, utc

if TYPE_CHECKING:
    from azure.data.tables import TableClient

    from shared.runtime import Runtime

log = logging.getLogger(__name__)

MARKER_PARTITION = "housekeeping"
MARKER_ROW = "ledgerHistory"

# The day of the last pass per Runtime (one per process): no request at all on the
# other ticks of the day.
_done_on: weakref.WeakKeyDictionary[Runtime, str] = weakref.WeakKeyDictionary()


@dataclass
class HistoryResult:
    cutoff: datetime
    deleted: list[str] = field(default_factory=list)
    kept_with_blob: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    operations_deleted: list[str] = field(default_factory=list)  # ended operation rows


def delete_old_rows(runtime: Runtime, *, force: bool = False) -> HistoryResult | None:
    """The day's history pass, or None when it already ran today (``force``: run anyway)."""
    now = utc(runtime.clock())
    today = now.date().isoformat()
    if not force and _done_on.get(runtime) == today:
        return None
    operations = runtime.operations.table
    if not force and _marker_day(operations) == today:
        _done_on[runtime] = today
        return None
    result = delete_before(
        runtime.ledger.table,
        runtime.blobs.container.container_name,
        runtime.blobs.names(),
        sorted({s.key for s in runtime.settings.apim_services}),
        now - timedelta(days=runtime.settings.ledger_history_days),
    )
    ended = delete_ended_operations(
        operations, now - timedelta(days=runtime.settings.ledger_history_days)
    )
    operations.upsert_entity(
        {"PartitionKey": MARKER_PARTITION, "RowKey": MARKER_ROW, "Day": today, "At": now}
    )
    _done_on[runtime] = today
    log.info(
        "History before %s: %d ledger row(s) deleted, %d kept (blob still there), "
        "%d operation row(s) deleted, %d error(s)",
        result.cutoff.date().isoformat(),
        len(result.deleted),
        len(result.kept_with_blob),
        len(ended.deleted),
        len(result.errors) + len(ended.errors),
    )
    result.operations_deleted = ended.deleted
    return result


def _marker_day(table: TableClient) -> str | None:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return str(table.get_entity(MARKER_PARTITION, MARKER_ROW).get("Day"))
    except ResourceNotFoundError:
        return None


def delete_before(
    ledger: TableClient,
    container_name: str,
    blob_names: Iterable[str],
    services: Sequence[str],
    cutoff: datetime,
) -> HistoryResult:
    """Delete each service's Pruned and Failed rows started before ``cutoff`` whose blob
    is not in ``blob_names`` (the container's listing, read before the rows)."""
    from shared.adapters.ledger import BackupLedger

    cutoff = utc(cutoff)
    present = frozenset(blob_names)
    result = HistoryResult(cutoff)
    reader = BackupLedger(ledger)
    for service in services:
        chunk: list[_Key] = []
        for record in reader.history_before(service, cutoff):
            if record.created_at >= cutoff or record.status not in (Status.PRUNED, Status.FAILED):
                continue  # the query's job; checked again, as deleting is for good
            if record.blob_name in present and _in_container(record, container_name):
                result.kept_with_blob.append(record.backup_name)
                continue
            chunk.append(_Key.of(record))
            if len(chunk) == TABLE_BATCH_SIZE:
                _delete(ledger, chunk, result)
                chunk = []
        if chunk:
            _delete(ledger, chunk, result)
    return result


def _in_container(record: BackupRecord, container_name: str) -> bool:
    # Another container's blob is not in our listing: keep such a row (never guess).
    return not record.container or record.container.lower() == container_name.lower()


@dataclass(frozen=True)
class _Key:
    partition: str
    row: str
    etag: str | None

    @classmethod
    def of(cls, record: BackupRecord) -> _Key:
        return cls(record.service, record.backup_name, record.etag)


def _delete(table: TableClient, chunk: list[_Key], result: HistoryResult) -> None:
    """One transaction (one partition, at most 100 rows), ETag-guarded; a row that
    changed meanwhile (412) is left and the rest resubmitted; one already gone (404)
    counts as deleted."""
    from azure.core.exceptions import AzureError
    from azure.data.tables import TableTransactionError

    rows = list(chunk)
    while rows:
        try:
            table.submit_transaction([_delete_operation(k) for k in rows])
        except TableTransactionError as exc:
            if exc.status_code in (404, 412) and 0 <= exc.index < len(rows):
                bad = rows.pop(exc.index)
                if exc.status_code == 404:
                    result.deleted.append(bad.row)
                else:
                    result.errors[bad.row] = "row changed meanwhile (412); kept"
                continue
            _fail(rows, exc, result)
            return
        except AzureError as exc:
            _fail(rows, exc, result)
            return
        result.deleted.extend(k.row for k in rows)
        return


def _delete_operation(key: _Key) -> tuple[str, dict[str, Any], dict[str, Any]]:
    from azure.core import MatchConditions

    entity = {"PartitionKey": key.partition, "RowKey": key.row}
    options: dict[str, Any] = {}
    if key.etag is not None:
        options = {"etag": key.etag, "match_condition": MatchConditions.IfNotModified}
    return ("delete", entity, options)


def _fail(rows: list[_Key], exc: Exception, result: HistoryResult) -> None:
    log.warning("Deleting %d history row(s) failed: %s", len(rows), type(exc).__name__)
    for key in rows:
        result.errors[key.row] = f"delete failed: {type(exc).__name__}"


def delete_ended_operations(table: TableClient, cutoff: datetime) -> HistoryResult:
    """Operation rows (backups and restores) created before ``cutoff`` that have ended:
    the operations table's history, bounded like the ledger's. Running ones stay."""
    from shared.rules.model import OperationRecord

    cutoff = utc(cutoff)
    result = HistoryResult(cutoff)
    rows = table.query_entities(
        "PartitionKey eq @pk and CreatedAt lt @cutoff and Status ne @running",
        parameters={
            "pk": OperationRecord.PARTITION,
            "cutoff": cutoff,
            "running": Status.RUNNING.value,
        },
        select=["PartitionKey", "RowKey", "CreatedAt", "Status"],
    )
    chunk: list[_Key] = []
    for entity in rows:
        created = entity.get("CreatedAt")
        if not isinstance(created, datetime) or utc(created) >= cutoff:
            continue
        if entity.get("Status") == Status.RUNNING.value:
            continue
        chunk.append(_Key(OperationRecord.PARTITION, str(entity["RowKey"]), _etag(entity)))
        if len(chunk) == TABLE_BATCH_SIZE:
            _delete(table, chunk, result)
            chunk = []
    if chunk:
        _delete(table, chunk, result)
    return result


def _etag(entity: Any) -> str | None:
    metadata = getattr(entity, "metadata", None) or {}
    etag = metadata.get("etag")
    return str(etag) if etag else None
