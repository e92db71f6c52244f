"""The year's configuration changes judged from the record alone (part of the oracle: no
import of the product), by docs/change-backups.md's promises.

A change made at ``t`` is protected once a backup of its service that APIM began at or
after ``t`` has succeeded (APIM finished it); until then it is unprotected, and its age is
how long. The bound: CHANGE_MAX_DELAY_MINUTES, plus one housekeeping interval (the tick
that sees the delay pass), plus one backup's run.

[f] Changes (after every step, and at the end).
    - No change stays unprotected longer than the bound, unless its service had
      CHANGE_BACKUPS_PER_DAY change backups in the 24 hours before (the daily cap: then
      the next scheduled backup protects it, and the RPO check [a] holds it to that).
    - The cap holds: no service has more than CHANGE_BACKUPS_PER_DAY change backups in any
      24 hours.
    A change backup is one APIM began that a change explains (some change of the service
    made before it began and not protected by an earlier backup that succeeded), other
    than the first backup of the service after a scheduled run (the run's, which pays
    pending changes too) and one asked for on demand. The needless-backup check [e] counts
    a backup no change explains as needless: so a backup that the product's own backups,
    restores or a duplicate event caused is a problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bench.year.record import ApimOperation, ChangeMade, Injected, Record

Report = Callable[[str, datetime, str, tuple[str, ...]], None]  # check, when, what, key


@dataclass(frozen=True)
class ChangePolicy:
    max_delay: timedelta
    per_day: int
    tick: timedelta  # the housekeeping interval on a change day
    backup: timedelta  # how long a backup runs in the emulator

    @property
    def bound(self) -> timedelta:
        return self.max_delay + self.tick + self.backup


@dataclass
class ChangeFigures:
    made: int = 0
    change_backups: int = 0
    ages: list[float] = field(default_factory=list)  # seconds, one per protected change
    capped: int = 0  # changes left to the scheduled backup by the daily cap

    def lines(self, policy: ChangePolicy) -> list[str]:
        from bench.year.rto import distribution

        return [
            f"  configuration changes made {self.made}, change backups APIM took "
            f"{self.change_backups}; left to the scheduled backup by the daily cap "
            f"{self.capped}",
            f"  age of the oldest unprotected change, per change: {distribution(self.ages)}; "
            f"bound {policy.bound.total_seconds() / 60:.0f} min (CHANGE_MAX_DELAY_MINUTES "
            f"{policy.max_delay.total_seconds() / 60:.0f} + a tick + a backup)",
        ]


class ChangeJudge:
    def __init__(self, record: Record, injected: Injected, policy: ChangePolicy) -> None:
        self.record = record
        self.injected = injected
        self.changes = injected.changes  # the driver appends as it makes them
        self.policy = policy
        self.figures = ChangeFigures()
        self._open: list[ChangeMade] = []
        self._by_service: dict[str, list[ChangeMade]] = {}  # in the order made

    def protected_at(self, change: ChangeMade) -> datetime | None:
        """When APIM finished the first backup begun at or after the change (succeeded)."""
        ends = [
            op.due_at
            for op in self.record.backups_of(change.service)  # newest first
            if op.succeeded and op.started_at >= change.at
        ]
        return min(ends) if ends else None

    def explained_by_change(self, op: ApimOperation) -> bool:
        """A change of ``op``'s service made before APIM began it, and not protected by a
        backup that succeeded before it began. The latest such change decides: if any is
        unprotected then, so is the latest."""
        before = [c for c in self._by_service.get(op.service, []) if c.at <= op.started_at]
        if not before:
            return False
        protected = self.protected_at(before[-1])
        return protected is None or protected > op.started_at

    def is_change_backup(self, op: ApimOperation) -> bool:
        if op.backup_name in self.injected.on_demand or not self.explained_by_change(op):
            return False
        runs = [t for t in self.injected.runs if t <= op.started_at]
        if not runs:
            return True
        first = min(
            (b for b in self.record.backups_of(op.service) if b.started_at >= runs[-1]),
            key=lambda b: b.started_at,
        )
        return first is not op

    def _capped(self, change: ChangeMade) -> bool:
        """The service had CHANGE_BACKUPS_PER_DAY change backups in the 24 hours before the
        change's bound passed: the product had to leave it to the scheduled backup."""
        moment = change.at + self.policy.bound
        recent = sum(
            1
            for op in self.record.backups_of(change.service)
            if moment - timedelta(hours=24) <= op.started_at < moment and self.is_change_backup(op)
        )
        return recent >= self.policy.per_day

    def after_step(self, now: datetime, report: Report) -> None:
        for change in self.changes[self.figures.made :]:
            self._open.append(change)
            self._by_service.setdefault(change.service, []).append(change)
        self.figures.made = len(self.changes)
        still: list[ChangeMade] = []
        for change in self._open:
            protected = self.protected_at(change)
            done = protected is not None and protected <= now
            age = (protected if done and protected else now) - change.at
            if not done:
                still.append(change)
            if age > self.policy.bound and self._capped(change):
                self.figures.capped += done
                continue
            if done:
                self.figures.ages.append(age.total_seconds())
            if age > self.policy.bound:
                report(
                    "f",
                    now,
                    f"{change.service}: the change '{change.what}' of {change.at:%Y-%m-%d %H:%M}"
                    f" was unprotected {age.total_seconds() / 60:.0f} min, past "
                    f"{self.policy.bound.total_seconds() / 60:.0f} min",
                    ("unprotected", change.service, change.at.isoformat()),
                )
        self._open = still

    def finish(self, services: tuple[str, ...], report: Report) -> None:
        """The cap, over every 24 hours that begin at a change backup."""
        day = timedelta(hours=24)
        for service in services:
            starts = sorted(
                op.started_at for op in self.record.backups_of(service) if self.is_change_backup(op)
            )
            self.figures.change_backups += len(starts)
            for i, first in enumerate(starts):
                within = [t for t in starts[i:] if t < first + day]
                if len(within) > self.policy.per_day:
                    report(
                        "f",
                        first,
                        f"{service}: {len(within)} change backups in the 24 h from "
                        f"{first:%Y-%m-%d %H:%M}, more than CHANGE_BACKUPS_PER_DAY="
                        f"{self.policy.per_day}",
                        ("cap", service, first.isoformat()),
                    )
                    break
