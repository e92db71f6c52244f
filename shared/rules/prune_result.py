"""The answer of a pruning pass (``POST /api/prune``, docs/http-api.md): what a
:class:`~shared.rules.reconcile.PrunePlan` did once carried out, or would do in a dry run.
Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.rules.model import Status, iso
from shared.rules.reconcile import PrunePlan
from shared.rules.retention import Decision


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
    found: list[Entry] = field(default_factory=list)  # Failed from evidence, blob there: Succeeded
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
            "found": [e.to_json() for e in self.found],
            "orphans": [o.to_json() for o in self.orphans],
            "errors": [e.to_json() for e in self.errors],
            "alreadyPruned": self.already_pruned,
        }


def result_of(plan: PrunePlan, dry_run: bool, failures: dict[str, str]) -> PruneResult:
    """The result of carrying ``plan`` out, given what could not be done (by backup or
    orphan blob name, with why)."""
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
    for d in plan.found:
        if d.record.backup_name in failures:
            result.errors.append(ErrorEntry(d.record.backup_name, failures[d.record.backup_name]))
        else:
            result.found.append(Entry.of(d))
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
