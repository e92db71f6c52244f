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
a leftover blob first; the next day's pass then deletes the row. A ``Failed`` row of
another container or storage account (BACKUP_CONTAINER or BACKUP_STORAGE_ACCOUNT changed
since) is kept: this listing cannot show its blob, and a guess would orphan the blob for
good. A ``Pruned`` row there goes: pruning deleted its blob before marking it (see
:func:`~shared.rules.reconcile.in_container`).

The tables are reached through their adapters: the ledger's rows through
:class:`~shared.adapters.ledger.BackupLedger`, the operation rows and the day's mark
through :class:`~shared.adapters.history.OperationHistory`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.rules.model import BackupRecord, Status, utc
from shared.rules.reconcile import in_container

if TYPE_CHECKING:
    from shared.adapters.ledger import BackupLedger
    from shared.runtime import Runtime

log = logging.getLogger(__name__)

# The day of the last pass per Runtime (one per process): no request at all on the
# other ticks of the day.
_done_on: weakref.WeakKeyDictionary[Runtime, str] = weakref.WeakKeyDictionary()


@dataclass
class HistoryResult:
    cutoff: datetime
    deleted: list[str] = field(default_factory=list)
    kept_with_blob: list[str] = field(default_factory=list)
    kept_elsewhere: list[str] = field(default_factory=list)  # Failed, another container
    errors: dict[str, str] = field(default_factory=dict)
    operations_deleted: list[str] = field(default_factory=list)  # ended operation rows


def delete_old_rows(runtime: Runtime, *, force: bool = False) -> HistoryResult | None:
    """The day's history pass, or None when it already ran today (``force``: run anyway)."""
    from shared.adapters.history import OperationHistory

    now = utc(runtime.clock())
    today = now.date().isoformat()
    if not force and _done_on.get(runtime) == today:
        return None
    operations = OperationHistory(runtime.operations)
    if not force and operations.marked_day() == today:
        _done_on[runtime] = today
        return None
    cutoff = now - timedelta(days=runtime.settings.ledger_history_days)
    result = delete_before(
        runtime.ledger,
        (runtime.settings.storage_account, runtime.settings.container),
        runtime.blobs.names(),
        sorted({s.key for s in runtime.settings.apim_services}),
        cutoff,
    )
    ended = operations.delete_ended_before(cutoff)
    operations.mark_day(today, now)
    _done_on[runtime] = today
    log.info(
        "History before %s: %d ledger row(s) deleted, %d kept (blob still there), "
        "%d kept (Failed, in another container or account), "
        "%d operation row(s) deleted, %d error(s)",
        result.cutoff.date().isoformat(),
        len(result.deleted),
        len(result.kept_with_blob),
        len(result.kept_elsewhere),
        len(ended.deleted),
        len(result.errors) + len(ended.errors),
    )
    result.operations_deleted = ended.deleted
    return result


def delete_before(
    ledger: BackupLedger,
    store: tuple[str, str],
    blob_names: Iterable[str],
    services: Sequence[str],
    cutoff: datetime,
) -> HistoryResult:
    """Delete each service's Pruned and Failed rows started before ``cutoff`` whose blob
    is not in ``blob_names``: the listing of ``store`` (account, container), read before
    the rows. A Failed row of another account or container is kept: the listing cannot
    show its blob (see :func:`~shared.rules.reconcile.in_container`)."""
    cutoff = utc(cutoff)
    present = frozenset(blob_names)
    account, container = store
    result = HistoryResult(cutoff)

    def doomed(service: str) -> Iterator[BackupRecord]:
        for record in ledger.history_before(service, cutoff):
            if record.created_at >= cutoff or record.status not in (Status.PRUNED, Status.FAILED):
                continue  # the query's job; checked again, as deleting is for good
            if not in_container(record, account=account, container=container):
                if record.status is Status.FAILED:
                    result.kept_elsewhere.append(record.backup_name)
                    continue  # its blob may exist, where this listing cannot see
            elif record.blob_name in present:
                result.kept_with_blob.append(record.backup_name)
                continue
            yield record

    for service in services:
        deletions = ledger.delete_rows(doomed(service))
        result.deleted.extend(deletions.deleted)
        result.errors.update(deletions.errors)
    return result
