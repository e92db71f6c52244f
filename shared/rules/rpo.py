"""The RPO as a verdict: a service's newest restorable backup is recent enough
(``healthy``), too old (``breached``), or the service has had no backup yet and its
first is not late (``pending``).

The rule for a service's first days (docs/reliability.md, "Quiet first days"): a
service that has never had a backup is *pending* until ``RPO_HOURS`` after it first
appeared, and *breached* from then on, whether its first backup is still running,
failed, or was never started. When it first appeared is the earliest of what is
known: the mark housekeeping writes the first time it checks the service's RPO, and
the creation of its oldest ledger row read. A service that ever had a backup (a row
that Succeeded, or was Pruned) is never pending again: once it has lost its backups
it is breached, as before. Pure: the rows and the mark are read by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.rules.model import BackupRecord, Status, newest_restorable

# Where the first-appearance marks live: OPERATIONS_TABLE, PartitionKey ``seen``,
# RowKey the service's name, ``FirstSeen`` a DateTime (docs/ledger.md).
FIRST_SEEN_PARTITION = "seen"


class RpoState(StrEnum):
    HEALTHY = "healthy"
    PENDING = "pending"
    BREACHED = "breached"


@dataclass(frozen=True)
class RpoVerdict:
    state: RpoState
    newest: BackupRecord | None = None  # the newest restorable backup, if any
    age: timedelta | None = None  # its age
    first_backup_due: datetime | None = None  # while pending: when it becomes a breach

    @property
    def age_hours(self) -> float | None:
        return None if self.age is None else round(self.age.total_seconds() / 3600, 2)


def first_appearance(
    first_seen: datetime | None, recent: Iterable[BackupRecord]
) -> datetime | None:
    """The earliest moment the service is known to have been configured: its mark, or
    its oldest ledger row when that is older (a mark written late, or lost)."""
    moments = [r.created_at for r in recent]
    if first_seen is not None:
        moments.append(first_seen)
    return min(moments, default=None)


def judge_rpo(
    now: datetime,
    recent: Iterable[BackupRecord],
    first_seen: datetime | None,
    rpo: timedelta,
) -> RpoVerdict:
    """The service's RPO at ``now`` from its ledger rows of the last 30 days (any
    status) and its first-appearance mark (None: not written yet, so it appears now)."""
    rows = list(recent)
    found = newest_restorable(rows, now)
    if found is not None:
        age = now - found.created_at
        state = RpoState.HEALTHY if age <= rpo else RpoState.BREACHED
        return RpoVerdict(state, found, age)
    if any(r.status in (Status.SUCCEEDED, Status.PRUNED) for r in rows):
        return RpoVerdict(RpoState.BREACHED)  # it had backups: these are not its first days
    appeared = first_appearance(first_seen, rows) or now
    due = appeared + rpo
    return RpoVerdict(RpoState.PENDING if now < due else RpoState.BREACHED, first_backup_due=due)
