"""A pruning pass's plan and its result: the ledger reconciled with the container's listing.

Pure, over plain data (ledger rows and blob names); the pass that reads them and carries
the plan out is :mod:`shared.jobs.pruning`. :func:`reconcile` decides the whole pass:

- Rows of another container or storage account are left alone, kept with the reason
  (:func:`in_container`); the rest go through :mod:`shared.rules.retention`.
- A ``Succeeded`` row whose blob is missing is judged by asking the policy "would this
  row be pruned now, going by the ledger as written?". Retention is monotone in time
  (expiry and age only grow, and a backup that was not among the newest ``min_keep``
  stays so while the newer ones stand), so a row whose blob a pass deleted before it
  could update the row is still due: it becomes ``Pruned`` with no blob request. Any
  other ``Succeeded`` row without its blob has lost it for a reason that is not ours:
  it becomes ``Failed``, with an ``Error`` that says the blob vanished (docs/ledger.md).
- Retention for the remaining rows is then decided without the vanished ones, so
  ``min_keep`` counts only backups whose blobs really exist.
- A ``Pruned`` row whose blob is still there has its leftover blob deleted.
- A ``Failed`` row with no operation URL whose blob is there is *found*
  (:func:`is_found`): its start was unconfirmed, and evidence judged it ``Failed``
  because the service looked idle and the blob was not there yet; but APIM writes a
  blob with the backup's unique name only when it took the backup, so the backup exists
  after all (APIM showed no ``Updating`` while it ran: docs/reliability.md, "What APIM
  shows during a backup"). It becomes ``Succeeded`` and goes through retention as one.
- Orphans: blobs named like backups (``is_backup_name``) with no ledger row are
  reported, and deleted once the timestamp in their name is more than 30 days old
  (they can no longer be restored anyway, and young ones may belong to a backup whose
  row is being written right now). Blobs not named like backups are never touched.

A settings manifest (``<backup>.manifest.json``) goes with its backup, and holds the
backup's row back when it cannot be deleted, as the backup's own blob would.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared.rules.manifest import backup_of_manifest, manifest_blob_name
from shared.rules.model import BackupRecord, Status, iso, utc
from shared.rules.naming import is_backup_name, parse_backup_name
from shared.rules.retention import Decision, plan_retention

ORPHAN_MIN_AGE = timedelta(days=30)  # a backup older than this cannot be restored


# --------------------------------------------------------------------------- plan


def in_container(record: BackupRecord, *, account: str, container: str) -> bool:
    """Whether the row's blob lives in ``container`` of storage account ``account`` (each
    compared without case), so that this container's listing says whether the blob
    exists. A row with no ``StorageAccount`` or no ``Container`` predates the column and
    can only mean ours.

    Pruning leaves a row of another container or account alone: after
    BACKUP_STORAGE_ACCOUNT or BACKUP_CONTAINER changes, the old backups are not in the
    new listing, and are not lost for it. The history pass keeps such a row while it is
    ``Failed`` (its blob may still exist: the listing cannot tell) and deletes it once
    ``Pruned`` (pruning deleted its blob first) (:mod:`shared.jobs.history`).
    """
    same_account = not record.storage_account or record.storage_account.lower() == account.lower()
    same_container = not record.container or record.container.lower() == container.lower()
    return same_account and same_container


def elsewhere(record: BackupRecord, *, account: str, container: str) -> str:
    """Why a row is not judged by this listing (``in_container`` is false)."""
    if record.storage_account and record.storage_account.lower() != account.lower():
        return f"blob is in storage account '{record.storage_account}', not '{account}'"
    return f"blob is in container '{record.container}', not '{container}'"


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
    """What one pass will do. Every ledger row is in exactly one of the five tuples."""

    prune: tuple[Decision, ...]  # delete the blob if present, then row -> Pruned
    keep: tuple[Decision, ...]  # left alone
    vanished: tuple[Decision, ...]  # Succeeded, blob gone, not due: row -> Failed
    stale: tuple[Decision, ...]  # already Pruned but the blob is still there: delete it
    orphans: tuple[Orphan, ...]
    present: frozenset[str]  # the container's blob names, as listed
    found: tuple[Decision, ...] = ()  # Failed from evidence, blob there, kept: -> Succeeded


FOUND_REASON = "found: blob present, so API Management took the backup"


def is_found(record: BackupRecord, present: Collection[str]) -> bool:
    """Whether a ``Failed`` row's backup exists after all: its start was never confirmed
    (no operation URL, so the verdict came from evidence, not from APIM) and its blob is
    in the listing. A row APIM itself reported ``Failed`` stays so whatever the container
    holds: its blob may be incomplete."""
    return (
        record.status is Status.FAILED and not record.operation_url and record.blob_name in present
    )


def found_note(record: BackupRecord, container_name: str, now: datetime) -> str:
    """The ``Error`` a found row keeps, so that the earlier verdict stays explained."""
    note = (
        f"Judged Failed from evidence, then found in container '{container_name}' at "
        f"{iso(now)}: API Management took the backup after all."
    )
    return f"{note} Earlier: {record.error}" if record.error else note


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
    account_name: str,
    container_name: str,
    known_names: Collection[str] = (),
) -> PrunePlan:
    """Compare the ledger with the container's listing and decide the whole pass.

    ``account_name`` and ``container_name`` say where ``blob_names`` were listed.
    ``known_names`` are RowKeys of ledger rows that could not be read as backups; their
    blobs are never treated as orphans.
    """
    present = frozenset(blob_names)
    rows = list(records)
    store = {"account": account_name, "container": container_name}
    # A found row goes through retention as the Succeeded row it becomes; the plan's
    # decisions then carry the row as read (the update is conditional on its etag).
    as_read = {r.backup_name: r for r in rows if in_container(r, **store) and is_found(r, present)}
    rows = [
        r.with_changes(status=Status.SUCCEEDED) if r.backup_name in as_read else r for r in rows
    ]
    local = [r for r in rows if in_container(r, **store)]
    foreign = [Decision(r, elsewhere(r, **store)) for r in rows if not in_container(r, **store)]
    ledger_names = {r.backup_name for r in rows} | set(known_names)
    orphans = _orphans(present - ledger_names, utc(now))
    plan = _plan(local, foreign, present, orphans, utc(now), retention_days, min_keep)
    return _found(plan, as_read)


def _plan(
    local: list[BackupRecord],
    foreign: list[Decision],
    present: frozenset[str],
    orphans: tuple[Orphan, ...],
    now: datetime,
    retention_days: int,
    min_keep: int,
) -> PrunePlan:
    """The plan for the rows of this container (``foreign`` rows are kept)."""
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
    return PrunePlan(
        prune=(*plan.prune, *gone_due),
        keep=(*keep, *foreign),
        vanished=tuple(lost),
        stale=tuple(Decision(d.record, "already pruned; leftover blob deleted") for d in stale),
        orphans=orphans,
        present=present,
    )


def _found(plan: PrunePlan, as_read: dict[str, BackupRecord]) -> PrunePlan:
    """Found rows that retention keeps move from ``keep`` to ``found``; every decision
    about a found row carries the row as read."""

    def read(decisions: Iterable[Decision]) -> tuple[Decision, ...]:
        return tuple(
            Decision(as_read.get(d.record.backup_name, d.record), d.reason) for d in decisions
        )

    found = [d for d in plan.keep if d.record.backup_name in as_read]
    return replace(
        plan,
        prune=read(plan.prune),
        keep=tuple(d for d in plan.keep if d.record.backup_name not in as_read),
        found=read(Decision(d.record, FOUND_REASON) for d in found),
    )


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


# --------------------------------------------------------------------------- carrying it out


@dataclass(frozen=True)
class RowChange:
    """Columns to merge into one ledger row, if the row is unchanged since it was read."""

    record: BackupRecord
    changes: dict[str, Any]


def blobs_to_delete(plan: PrunePlan) -> list[str]:
    """The blobs the plan deletes: those of rows being pruned (when still there), leftovers
    of rows already Pruned, old orphans, and the settings manifests going with them."""
    return [
        *(d.record.blob_name for d in plan.prune if d.record.blob_name in plan.present),
        *(d.record.blob_name for d in plan.stale),
        *(o.blob_name for o in plan.orphans if o.delete),
        *_manifests_going(plan),
    ]


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


def by_backup(blob_failures: dict[str, str]) -> dict[str, str]:
    """Blob delete failures by the backup they hold back: a manifest that could not go holds
    its backup's row back, as the backup's own blob would (the next pass deletes it then:
    "blob already gone" for the backup)."""
    return {backup_of_manifest(k) or k: v for k, v in blob_failures.items()}


def row_changes(
    plan: PrunePlan,
    failures: Collection[str],
    container_name: str,
    now: datetime,
    sizes: Mapping[str, int | None] | None = None,
) -> list[RowChange]:
    """The ledger rows the plan changes once its blobs are gone: pruned rows become
    ``Pruned`` (except those whose blob is in ``failures``, left exactly as they were),
    vanished ones ``Failed``, found ones ``Succeeded`` (with their blob's size from
    ``sizes`` when known)."""
    sizes = sizes or {}
    return (
        [
            RowChange(d.record, {"Status": Status.PRUNED.value, "PrunedAt": now})
            for d in plan.prune
            if d.record.blob_name not in failures
        ]
        + [
            RowChange(
                d.record,
                {
                    "Status": Status.FAILED.value,
                    "Error": vanished_error(d.record, container_name, now),
                },
            )
            for d in plan.vanished
        ]
        + [
            RowChange(
                d.record,
                {
                    "Status": Status.SUCCEEDED.value,
                    "Error": found_note(d.record, container_name, now),
                    **_size_column(sizes.get(d.record.blob_name)),
                },
            )
            for d in plan.found
        ]
    )


def _size_column(size: int | None) -> dict[str, Any]:
    return {} if size is None else {"SizeBytes": (size, "Edm.Int64")}
