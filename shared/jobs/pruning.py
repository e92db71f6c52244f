"""A pruning pass: read the ledger and the container, decide, then delete blobs and
update rows, in the order that keeps the ledger true whatever fails or crashes.

What to delete and why is decided by :func:`shared.rules.reconcile.reconcile` (pure);
the batched requests are the adapters' (:class:`~shared.adapters.blobs.BackupBlobs`,
:class:`~shared.adapters.ledger.BackupLedger`). One pass (:func:`run_pruning`) does,
in this order:

1. :func:`gather`: read the ledger's live rows (every row not yet ``Pruned``: a
   server-side filter, paged; their number is bounded by retention, not by history),
   then list the container's blob names once (paged). The ledger is read *first*: APIM
   writes the blob before a backup can be recorded ``Succeeded``, so every
   ``Succeeded`` row we read has its blob written before the listing starts. Listing
   first would let a backup that finished in between look as if its blob had
   vanished. A backup-named blob with no live row is then looked up by its key (a
   point read): a ``Pruned`` row whose blob was left behind, a row written since, or
   an orphan. ``Pruned`` history is never read.
2. ``reconcile`` compares the two and applies :mod:`shared.rules.retention`.
3. :func:`prune` deletes blobs in batches (256 per request), then updates ledger
   rows in transactions (100 operations per request, one partition each).

Why blobs first, then rows (the crash argument):

- A row is only ever changed *after* its blob is confirmed gone (deleted now, or
  already absent: a 404 counts as deleted). So a ``Pruned`` row never has a blob
  that we still mean to keep, and a row whose blob delete failed (a lease, a
  permission, an immutability policy) is left exactly as it was and reported; the
  ledger keeps telling the truth about a blob that is still there.
- A crash (or a failed transaction) between the two steps leaves ``Succeeded`` or
  ``Failed`` rows whose blobs are gone. The next pass repairs them: ``reconcile``
  finds such a ``Succeeded`` row still due, and it becomes ``Pruned`` with no further
  blob request; any other ``Succeeded`` row without its blob becomes ``Failed``.
- The opposite order (rows first) would make a failed blob delete leave a
  ``Pruned`` row over a live blob, and would need a third state to undo it.

A ledger update is conditional on the row's etag (``IfNotModified``), so a row that
changed since it was read (a concurrent pass, housekeeping recording a result) is
never overwritten. Table transactions are all-or-nothing: when one fails with 412
(changed meanwhile) or 404 (row deleted), the service names the failing operation;
that row is reported as an error and the rest of the chunk is resubmitted without
it. Any other failure of a transaction reports every row in it as an error and the
pass goes on with the next chunk; those rows' blobs are already gone, and the next
pass completes them as described above.

A ``Failed`` row whose start was unconfirmed and whose blob is listed is found
(``reconcile.is_found``): it becomes ``Succeeded``, with the blob's size read then.

Blobs not named like backups are never touched, and rows whose ``Container`` or
``StorageAccount`` is another are left alone (kept, with the reason). A dry run computes
the same plan and changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from shared.rules.model import BackupRecord, utc
from shared.rules.naming import is_backup_name
from shared.rules.prune_result import PruneResult, result_of
from shared.rules.reconcile import (
    PrunePlan,
    blobs_to_delete,
    by_backup,
    reconcile,
    row_changes,
)

if TYPE_CHECKING:
    from shared.adapters.blobs import BackupBlobs
    from shared.adapters.ledger import BackupLedger

logger = logging.getLogger(__name__)


def gather(
    ledger: BackupLedger, blobs: BackupBlobs
) -> tuple[list[BackupRecord], list[str], set[str]]:
    """What a pass needs, in the safe order: live rows, the listing, then the rows of
    blobs the live rows do not explain. (records, blob names, unreadable row keys)."""
    records, unreadable = ledger.live_rows()  # before the listing: see the module docstring
    names = blobs.names()
    known = {r.backup_name for r in records} | unreadable
    # Normally none: a Pruned row whose blob was left behind, or a row written since the
    # live rows were read. A blob with no row at all is an orphan: not returned.
    more, more_unreadable = ledger.rows_named(
        n for n in names if n not in known and is_backup_name(n)
    )
    return records + more, names, unreadable | more_unreadable


def prune(
    ledger: BackupLedger,
    blobs: BackupBlobs,
    plan: PrunePlan,
    now: datetime,
    *,
    dry_run: bool = False,
) -> PruneResult:
    """Carry out ``plan``: blobs first, then ledger rows (see the module docstring)."""
    now = utc(now)
    to_delete = blobs_to_delete(plan)
    blob_failures = {} if dry_run or not to_delete else blobs.delete_batched(to_delete)
    blob_failures = by_backup(blob_failures)

    # A found backup's size: one read per found row, which is rare (an unconfirmed start
    # that APIM finished after the product judged it Failed).
    sizes = (
        {}
        if dry_run
        else {d.record.blob_name: blobs.size_of(d.record.blob_name) for d in plan.found}
    )
    changes = row_changes(plan, blob_failures, blobs.container.container_name, now, sizes)
    row_failures = {} if dry_run or not changes else ledger.update_rows(changes)

    result = result_of(plan, dry_run, blob_failures | row_failures)
    logger.info(
        "Pruning%s: %d pruned, %d kept, %d marked failed, %d found, %d orphans (%d deleted), "
        "%d errors",
        " (dry run)" if dry_run else "",
        len(result.pruned),
        len(result.kept),
        len(result.marked_failed),
        len(result.found),
        len(result.orphans),
        sum(o.deleted for o in result.orphans),
        len(result.errors),
    )
    return result


def run_pruning(
    ledger: BackupLedger,
    blobs: BackupBlobs,
    *,
    now: datetime,
    retention_days: int,
    min_keep: int,
    account_name: str,
    dry_run: bool = False,
) -> PruneResult:
    """One whole pass: read the live rows, list the container, reconcile, prune.
    ``account_name``: the storage account ``blobs`` is in (BACKUP_STORAGE_ACCOUNT)."""
    records, names, unreadable = gather(ledger, blobs)
    plan = reconcile(
        records,
        names,
        now=now,
        retention_days=retention_days,
        min_keep=min_keep,
        account_name=account_name,
        container_name=blobs.container.container_name,
        known_names=unreadable,
    )
    return prune(ledger, blobs, plan, now, dry_run=dry_run)
