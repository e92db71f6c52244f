"""Pruning and reconciliation: apply the retention plan to Blob and Table Storage.

One pass (:func:`run_pruning`) does, in this order:

1. Read the ledger's live rows (every row not yet ``Pruned``: a server-side filter,
   paged; their number is bounded by retention, not by history), then list the
   container's blob names once (paged). The ledger is read *first*: APIM writes the
   blob before a backup can be recorded ``Succeeded``, so every ``Succeeded`` row we
   read has its blob written before the listing starts. Listing first would let a
   backup that finished in between look as if its blob had vanished. A backup-named
   blob with no live row is then looked up by its key (a point read): a ``Pruned``
   row whose blob was left behind, a row written since, or an orphan. ``Pruned``
   history is never read.
2. :func:`reconcile` (pure) compares the two and applies :mod:`shared.rules.retention`.
3. :func:`prune` deletes blobs in batches (256 per request), then updates ledger
   rows in transactions (100 operations per request, one partition each).

Why blobs first, then rows (the crash argument):

- A row is only ever changed *after* its blob is confirmed gone (deleted now, or
  already absent: a 404 counts as deleted). So a ``Pruned`` row never has a blob
  that we still mean to keep, and a row whose blob delete failed (a lease, a
  permission, an immutability policy) is left exactly as it was and reported; the
  ledger keeps telling the truth about a blob that is still there.
- A crash (or a failed transaction) between the two steps leaves ``Succeeded`` or
  ``Failed`` rows whose blobs are gone. The next pass repairs them: it judges a
  ``Succeeded`` row without a blob by asking the policy "would this row be pruned
  now, going by the ledger as written?". Retention is monotone in time (expiry and
  age only grow, and a backup that was not among the newest ``min_keep`` stays so
  while the newer ones stand), so a row we pruned is still due, and it becomes
  ``Pruned`` with no further blob request. Any other ``Succeeded`` row without its
  blob has lost it for a reason that is not ours: it becomes ``Failed`` with an
  ``Error`` that says the blob vanished (docs/ledger.md). Retention for the remaining
  rows is then decided without the vanished ones, so ``min_keep`` counts only
  backups whose blobs really exist.
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

Orphans: blobs named like backups (``is_backup_name``) with no ledger row are
reported, and deleted once the timestamp in their name is more than 30 days old
(they can no longer be restored anyway, and young ones may belong to a backup whose
row is being written right now). Blobs not named like backups are never touched,
and rows whose ``Container`` is another container are left alone.

A dry run computes the same plan and changes nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.rules.manifest import backup_of_manifest, manifest_blob_name
from shared.rules.model import BackupRecord, Status, iso, utc
from shared.rules.naming import is_backup_name, parse_backup_name
from shared.rules.retention import Decision, plan_retention

if TYPE_CHECKING:
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient

# The SDK is imported inside the functions that use it, so that importing the function
# app does not load it (a lighter cold start).

logger = logging.getLogger(__name__)


BLOB_BATCH_SIZE = 256  # the Blob batch API's limit per request
TABLE_BATCH_SIZE = 100  # the Table transaction limit (Azurite breaks on 101)
ORPHAN_MIN_AGE = timedelta(days=30)  # a backup older than this cannot be restored


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Orphan:
    """A blob named like a backup that has no ledger row."""

    blob_name: str
    service: str
    started_at: datetime
    delete: bool
    reason: str


@dataclass(frozen=True)
class PrunePlan:
    """What one pass will do. Every ledger row is in exactly one of the four tuples."""

    prune: tuple[Decision, ...]  # delete the blob if present, then row -> Pruned
    keep: tuple[Decision, ...]  # left alone
    vanished: tuple[Decision, ...]  # Succeeded, blob gone, not due: row -> Failed
    stale: tuple[Decision, ...]  # already Pruned but the blob is still there: delete it
    orphans: tuple[Orphan, ...]
    present: frozenset[str]  # the container's blob names, as listed


def vanished_error(record: BackupRecord, container_name: str, now: datetime) -> str:
    """The ``Error`` of a Succeeded row whose blob is gone (docs/ledger.md)."""
    return (
        f"The backup blob '{record.blob_name}' has vanished from container "
        f"'{container_name}' (found missing at {iso(now)}); the backup cannot be restored."
    )


def reconcile(
    records: Iterable[BackupRecord],
    blob_names: Iterable[str],
    *,
    now: datetime,
    retention_days: int,
    min_keep: int,
    container_name: str,
    known_names: Collection[str] = (),
) -> PrunePlan:
    """Compare the ledger with the container's listing and decide the whole pass.

    Pure: no I/O. ``known_names`` are RowKeys of ledger rows that could not be read
    as backups; their blobs are never treated as orphans.
    """
    now = utc(now)
    present = frozenset(blob_names)
    rows = list(records)
    local = [r for r in rows if _in_container(r, container_name)]
    foreign = [
        Decision(r, f"blob is in container '{r.container}', not '{container_name}'")
        for r in rows
        if not _in_container(r, container_name)
    ]

    # Pass 1, over the ledger as written: which rows are due for pruning at all.
    due = {
        d.record.backup_name: d.reason
        for d in plan_retention(local, now, retention_days, min_keep).prune
    }
    missing = [r for r in local if r.status is Status.SUCCEEDED and r.blob_name not in present]
    gone_due = [
        Decision(r, f"{due[r.backup_name]}; blob already gone")
        for r in missing
        if r.backup_name in due
    ]
    lost = [Decision(r, "blob vanished") for r in missing if r.backup_name not in due]

    # Pass 2, without the missing ones: min_keep must count only blobs that exist.
    missing_names = {r.backup_name for r in missing}
    plan = plan_retention(
        (r for r in local if r.backup_name not in missing_names), now, retention_days, min_keep
    )
    stale = [
        d for d in plan.keep if d.record.status is Status.PRUNED and d.record.blob_name in present
    ]
    stale_names = {d.record.backup_name for d in stale}
    keep = [d for d in plan.keep if d.record.backup_name not in stale_names]

    ledger_names = {r.backup_name for r in rows} | set(known_names)
    orphans = _orphans(present - ledger_names, now)
    return PrunePlan(
        prune=(*plan.prune, *gone_due),
        keep=(*keep, *foreign),
        vanished=tuple(lost),
        stale=tuple(Decision(d.record, "already pruned; leftover blob deleted") for d in stale),
        orphans=orphans,
        present=present,
    )


def _in_container(record: BackupRecord, container_name: str) -> bool:
    # A row without a Container predates the column: it can only mean ours.
    return not record.container or record.container.lower() == container_name.lower()


def _orphans(names: Iterable[str], now: datetime) -> tuple[Orphan, ...]:
    orphans: list[Orphan] = []
    for name in sorted(names):
        if not is_backup_name(name):
            continue  # not ours: never touched
        parsed = parse_backup_name(name)
        day = parsed.started_at.strftime("%Y-%m-%d")
        old = now - parsed.started_at > ORPHAN_MIN_AGE
        days = ORPHAN_MIN_AGE.days
        reason = (
            f"orphan: no ledger row, started {day}, more than {days} days ago"
            if old
            else f"orphan: no ledger row, started {day}; deleted once {days} days old"
        )
        orphans.append(Orphan(name, parsed.service, parsed.started_at, old, reason))
    return tuple(orphans)


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class Entry:
    """One ledger row in a result: its state before the pass and what happened."""

    backup_name: str
    service: str
    status: str  # the row's Status when the pass read it
    created_at: datetime
    reason: str

    @classmethod
    def of(cls, decision: Decision, reason: str | None = None) -> Entry:
        r = decision.record
        return cls(
            r.backup_name, r.service, r.status.value, r.created_at, reason or decision.reason
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "backupName": self.backup_name,
            "service": self.service,
            "status": self.status,
            "createdAt": iso(self.created_at),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class OrphanEntry:
    blob_name: str
    service: str
    created_at: datetime
    deleted: bool  # deleted by this pass (in a dry run: would be)
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "blobName": self.blob_name,
            "service": self.service,
            "createdAt": iso(self.created_at),
            "deleted": self.deleted,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ErrorEntry:
    name: str  # a backup (row) name or an orphan blob's name
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "error": self.error}


@dataclass
class PruneResult:
    """What a pass did (or, in a dry run, would do). ``to_json`` is the HTTP body."""

    dry_run: bool
    pruned: list[Entry] = field(default_factory=list)  # rows now Pruned / blobs removed
    kept: list[Entry] = field(default_factory=list)  # rows left as they are
    marked_failed: list[Entry] = field(default_factory=list)  # blob vanished: now Failed
    orphans: list[OrphanEntry] = field(default_factory=list)
    errors: list[ErrorEntry] = field(default_factory=list)  # left for the next pass
    already_pruned: int = 0  # Pruned rows with nothing left to do (not listed in kept)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "pruned": [e.to_json() for e in self.pruned],
            "kept": [e.to_json() for e in self.kept],
            "markedFailed": [e.to_json() for e in self.marked_failed],
            "orphans": [o.to_json() for o in self.orphans],
            "errors": [e.to_json() for e in self.errors],
            "alreadyPruned": self.already_pruned,
        }


# --------------------------------------------------------------------------- I/O


def read_ledger(ledger: TableClient) -> tuple[list[BackupRecord], set[str]]:
    """Every ledger row (one paged query): the readable ones, and the RowKeys of the rest.
    Grows with history: for audits, tests and benchmarks, never a tick (see gather)."""
    return _parse(ledger.list_entities())


def read_live(ledger: TableClient) -> tuple[list[BackupRecord], set[str]]:
    """The ledger's rows not yet Pruned (one filtered, paged query): the readable ones,
    and the RowKeys of the rest."""
    from shared.adapters.ledger import BackupLedger

    return _parse(BackupLedger(ledger).live_entities())


def _parse(entities: Iterable[dict[str, Any]]) -> tuple[list[BackupRecord], set[str]]:
    records: list[BackupRecord] = []
    unreadable: set[str] = set()
    for entity in entities:
        try:
            records.append(BackupRecord.from_entity(entity))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            # One bad row must not stop retention for everything else.
            logger.warning(
                "Ledger row %s/%s is unreadable: %s",
                entity.get("PartitionKey"),
                entity.get("RowKey"),
                exc,
            )
            unreadable.add(str(entity.get("RowKey", "")))
    return records, unreadable


def rows_of_blobs(
    ledger: TableClient, blob_names: Iterable[str], known: Collection[str]
) -> tuple[list[BackupRecord], set[str]]:
    """The rows of backup-named blobs that are not in ``known`` (the live rows), by point
    read: normally none; a Pruned row whose blob was left behind, or a row written since
    the live rows were read. A blob with no row at all is an orphan: not returned."""
    from azure.core.exceptions import ResourceNotFoundError

    entities: list[dict[str, Any]] = []
    for name in blob_names:
        if name in known or not is_backup_name(name):
            continue
        try:
            entities.append(ledger.get_entity(parse_backup_name(name).service, name))
        except ResourceNotFoundError:
            continue
    return _parse(entities)


def gather(
    ledger: TableClient, container: ContainerClient
) -> tuple[list[BackupRecord], list[str], set[str]]:
    """What a pass needs, in the safe order: live rows, the listing, then the rows of
    blobs the live rows do not explain. (records, blob names, unreadable row keys)."""
    records, unreadable = read_live(ledger)  # before the listing: see the module docstring
    names = list_blob_names(container)
    known = {r.backup_name for r in records} | unreadable
    more, more_unreadable = rows_of_blobs(ledger, names, known)
    return records + more, names, unreadable | more_unreadable


def list_blob_names(container: ContainerClient) -> list[str]:
    """The container's blob names; none when the container does not exist (yet): APIM
    creates it with the first backup, and a pass must not fail before that."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return list(container.list_blob_names())
    except ResourceNotFoundError:
        return []


def _chunks[T](items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def delete_blobs(container: ContainerClient, names: Sequence[str]) -> dict[str, str]:
    """Delete in batches; answer the names that could not be deleted, with why.

    A blob that is already gone (404) counts as deleted.
    """
    from azure.core.exceptions import AzureError

    failures: dict[str, str] = {}
    for chunk in _chunks(names, BLOB_BATCH_SIZE):
        try:
            parts = list(
                container.delete_blobs(
                    *chunk, delete_snapshots="include", raise_on_any_failure=False
                )
            )
        except AzureError as exc:
            for name in chunk:
                failures[name] = f"batch delete failed: {exc.__class__.__name__}"
            logger.warning(
                "Batch delete of %d blobs failed: %s", len(chunk), exc.__class__.__name__
            )
            continue
        # The service answers the sub-requests in the order they were sent.
        for name, part in zip(chunk, parts, strict=True):
            if part.status_code in (200, 202, 404):
                continue
            code = part.headers.get("x-ms-error-code", "")
            failures[name] = f"blob delete failed: {part.status_code} {code}".strip()
            logger.warning("Could not delete blob %s: %s %s", name, part.status_code, code)
    return failures


@dataclass(frozen=True)
class _RowUpdate:
    record: BackupRecord
    changes: dict[str, Any]

    def operation(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        entity = {
            "PartitionKey": self.record.service,
            "RowKey": self.record.backup_name,
            **self.changes,
        }
        options: dict[str, Any] = {"mode": UpdateMode.MERGE}
        if self.record.etag is not None:
            options |= {"etag": self.record.etag, "match_condition": MatchConditions.IfNotModified}
        return ("update", entity, options)


def update_rows(ledger: TableClient, updates: Sequence[_RowUpdate]) -> dict[str, str]:
    """Apply updates in transactions; answer the backup names not updated, with why."""
    failures: dict[str, str] = {}
    by_partition: dict[str, list[_RowUpdate]] = defaultdict(list)
    for update in updates:
        by_partition[update.record.service].append(update)
    for rows in by_partition.values():
        for chunk in _chunks(rows, TABLE_BATCH_SIZE):
            failures |= _submit(ledger, list(chunk))
    return failures


def _submit(ledger: TableClient, chunk: list[_RowUpdate]) -> dict[str, str]:
    from azure.core.exceptions import AzureError
    from azure.data.tables import TableTransactionError

    failures: dict[str, str] = {}
    while chunk:
        try:
            ledger.submit_transaction([u.operation() for u in chunk])
            return failures
        except TableTransactionError as exc:
            if exc.status_code in (404, 412) and 0 <= exc.index < len(chunk):
                # One row changed or went meanwhile: skip it, resubmit the rest.
                bad = chunk.pop(exc.index)
                failures[bad.record.backup_name] = (
                    f"row changed meanwhile ({exc.status_code}); not updated"
                )
                logger.warning(
                    "Ledger row %s changed meanwhile; left for the next pass",
                    bad.record.backup_name,
                )
                continue
            return failures | _fail_all(chunk, exc)
        except AzureError as exc:
            return failures | _fail_all(chunk, exc)
    return failures


def _fail_all(chunk: list[_RowUpdate], exc: Exception) -> dict[str, str]:
    logger.warning("Ledger transaction of %d rows failed: %s", len(chunk), exc.__class__.__name__)
    reason = f"ledger update failed: {exc.__class__.__name__}"
    return {u.record.backup_name: reason for u in chunk}


def prune(
    ledger: TableClient,
    container: ContainerClient,
    plan: PrunePlan,
    now: datetime,
    *,
    dry_run: bool = False,
) -> PruneResult:
    """Carry out ``plan``: blobs first, then ledger rows (see the module docstring)."""
    now = utc(now)
    doomed_orphans = [o.blob_name for o in plan.orphans if o.delete]
    to_delete = [
        *(d.record.blob_name for d in plan.prune if d.record.blob_name in plan.present),
        *(d.record.blob_name for d in plan.stale),
        *doomed_orphans,
    ]
    to_delete += _manifests_going(plan)
    blob_failures = {} if dry_run or not to_delete else delete_blobs(container, to_delete)
    # A manifest that could not go holds its backup's row back, as the backup's own blob
    # would: the next pass deletes it then ("blob already gone" for the backup).
    blob_failures = {backup_of_manifest(k) or k: v for k, v in blob_failures.items()}

    updates = [
        _RowUpdate(d.record, {"Status": Status.PRUNED.value, "PrunedAt": now})
        for d in plan.prune
        if d.record.blob_name not in blob_failures
    ] + [
        _RowUpdate(
            d.record,
            {
                "Status": Status.FAILED.value,
                "Error": vanished_error(d.record, container.container_name, now),
            },
        )
        for d in plan.vanished
    ]
    row_failures = {} if dry_run or not updates else update_rows(ledger, updates)

    result = _result(plan, dry_run, blob_failures | row_failures)
    logger.info(
        "Pruning%s: %d pruned, %d kept, %d marked failed, %d orphans (%d deleted), %d errors",
        " (dry run)" if dry_run else "",
        len(result.pruned),
        len(result.kept),
        len(result.marked_failed),
        len(result.orphans),
        sum(o.deleted for o in result.orphans),
        len(result.errors),
    )
    return result


def _manifests_going(plan: PrunePlan) -> list[str]:
    """The settings manifests (``<backup>.manifest.json``) that go with their backups: those
    of rows being pruned, of orphans being deleted, and of rows already Pruned (a leftover).
    Manifest blobs are never orphans themselves: they are not named like backups."""
    names = [
        *(d.record.blob_name for d in (*plan.prune, *plan.stale)),
        *(d.record.blob_name for d in plan.keep if d.record.status is Status.PRUNED),
        *(o.blob_name for o in plan.orphans if o.delete),
    ]
    return [m for m in map(manifest_blob_name, names) if m in plan.present]


def _result(plan: PrunePlan, dry_run: bool, failures: dict[str, str]) -> PruneResult:
    result = PruneResult(dry_run=dry_run)
    for d in (*plan.prune, *plan.stale):
        if d.record.backup_name in failures:
            result.errors.append(ErrorEntry(d.record.backup_name, failures[d.record.backup_name]))
        else:
            result.pruned.append(Entry.of(d))
    for d in plan.vanished:
        if d.record.backup_name in failures:
            result.errors.append(ErrorEntry(d.record.backup_name, failures[d.record.backup_name]))
        else:
            result.marked_failed.append(Entry.of(d, "blob vanished: row marked Failed"))
    for d in plan.keep:
        if d.record.status is Status.PRUNED:
            result.already_pruned += 1
        else:
            result.kept.append(Entry.of(d))
    for o in plan.orphans:
        deleted = o.delete and o.blob_name not in failures
        if o.delete and not deleted:
            result.errors.append(ErrorEntry(o.blob_name, failures[o.blob_name]))
        result.orphans.append(OrphanEntry(o.blob_name, o.service, o.started_at, deleted, o.reason))
    return result


def run_pruning(
    ledger: TableClient,
    container: ContainerClient,
    *,
    now: datetime,
    retention_days: int,
    min_keep: int,
    dry_run: bool = False,
) -> PruneResult:
    """One whole pass: read the live rows, list the container, reconcile, prune."""
    records, names, unreadable = gather(ledger, container)
    plan = reconcile(
        records,
        names,
        now=now,
        retention_days=retention_days,
        min_keep=min_keep,
        container_name=container.container_name,
        known_names=unreadable,
    )
    return prune(ledger, container, plan, now, dry_run=dry_run)
