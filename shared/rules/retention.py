"""Retention policy: which ledger rows to prune, which to keep, and why.

Plain functions over :class:`~shared.rules.model.BackupRecord`; no SDK, no I/O. A pruning
pass applies the policy (:mod:`shared.rules.reconcile` plans the pass, with the container's
listing; :mod:`shared.jobs.pruning` carries it out in Blob and Table Storage).

The rules, per row status:

- ``Running``: never touched (APIM may still be writing the blob).
- ``Pruned``: already done.
- ``Succeeded``: pruned when expired (``ExpiresAt`` reached) or older than
  ``retention_days``, except that the newest ``min_keep`` *restorable* backups of
  each service are always kept. An expired backup is never restorable, so it is
  never protected and always goes.
- ``Failed``: the same age rule (expired or older than ``retention_days``), and a
  failed backup never counts toward ``min_keep``. Pruning removes whatever blob a
  failed backup left behind and turns the row into ``Pruned`` (its ``Error`` stays).
  Failed rows are not pruned at once so that a failure stays visible as ``Failed``
  in ``GET /api/backups`` for as long as a successful backup would be kept.

Every row lands in exactly one of ``prune`` or ``keep``, each with a short reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.rules.model import BackupRecord, Status, newest_first, utc


@dataclass(frozen=True)
class Decision:
    """One row's fate and the reason for it (a short, human sentence)."""

    record: BackupRecord
    reason: str


@dataclass(frozen=True)
class RetentionPlan:
    """The policy's answer: every input row exactly once, in ``prune`` or ``keep``."""

    prune: tuple[Decision, ...]
    keep: tuple[Decision, ...]


def _day(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%d")


def protected_names(
    records: Iterable[BackupRecord], now: datetime, min_keep: int
) -> dict[str, set[str]]:
    """Per service, the names of its newest ``min_keep`` restorable backups."""
    restorable: dict[str, list[BackupRecord]] = defaultdict(list)
    for record in records:
        if record.is_restorable(now):
            restorable[record.service].append(record)
    return {
        service: {r.backup_name for r in newest_first(rows)[: max(min_keep, 0)]}
        for service, rows in restorable.items()
    }


def _age_reason(record: BackupRecord, now: datetime, retention: timedelta) -> str | None:
    """Why this row is old enough to prune, or None when it is not."""
    if record.is_expired(now):
        return f"expired {_day(record.expires_at)}"
    if now - record.created_at > retention:
        return f"older than {retention.days} days"
    return None


def decide(
    record: BackupRecord,
    now: datetime,
    retention_days: int,
    min_keep: int,
    protected: set[str],
) -> tuple[bool, str]:
    """(prune?, reason) for one row; ``protected`` holds its service's kept names."""
    if record.status is Status.RUNNING:
        return False, "running"
    if record.status is Status.PRUNED:
        when = f" {_day(record.pruned_at)}" if record.pruned_at is not None else ""
        return False, f"already pruned{when}"
    old = _age_reason(record, now, timedelta(days=retention_days))
    if record.status is Status.FAILED:
        if old is None:
            return False, f"failed; kept until {retention_days} days old"
        return True, f"failed, {old}"
    # Succeeded.
    if old is None:
        return False, f"within retention ({retention_days} days)"
    if record.backup_name in protected:
        # Only a restorable (so unexpired) backup can be protected: old is "older than".
        return False, (f"kept: one of the newest {min_keep} restorable backups of {record.service}")
    return True, old


def plan_retention(
    records: Iterable[BackupRecord], now: datetime, retention_days: int, min_keep: int
) -> RetentionPlan:
    """Decide, for every row, whether retention prunes it; see the module docstring."""
    now = utc(now)
    rows = list(records)
    protected = protected_names(rows, now, min_keep)
    prune: list[Decision] = []
    keep: list[Decision] = []
    for record in rows:
        go, reason = decide(
            record, now, retention_days, min_keep, protected.get(record.service, set())
        )
        (prune if go else keep).append(Decision(record, reason))
    return RetentionPlan(prune=tuple(prune), keep=tuple(keep))
