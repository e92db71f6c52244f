"""A service's pending (unprotected) configuration change, and when a backup of it is due.

A pending change is what the service changed since its last backup: when the first and
the last change happened, how many there were, a short list of what changed, and the
event ids already counted (so a duplicate delivery changes nothing). Changes merge into
it; a backup that started after the last change pays it.

Debouncing, per service (docs/change-backups.md):

- due once the service has been quiet for ``quiet`` (CHANGE_QUIET_MINUTES; 0: at once);
- due once its oldest pending change is ``max_delay`` old (CHANGE_MAX_DELAY_MINUTES),
  even while changes continue;
- never when ``per_day`` change backups (CHANGE_BACKUPS_PER_DAY) already started in the
  last 24 hours: the changes stay pending until a slot frees or another backup pays them.

Pure: no I/O. The adapter (shared.adapters.changes) stores a PendingChange per service.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from shared.rules.changes import Change
from shared.rules.model import utc

MAX_RECENT = 10  # what changed, newest last: enough to say what a backup holds
MAX_SEEN = 200  # event ids remembered against duplicate deliveries
DAY = timedelta(hours=24)


@dataclass(frozen=True)
class Recent:
    at: datetime
    what: str


@dataclass(frozen=True)
class PendingChange:
    """A service's unprotected changes (count 0: none), and what protects the older ones."""

    service: str
    first: datetime | None = None
    last: datetime | None = None
    count: int = 0
    recent: tuple[Recent, ...] = ()  # at most MAX_RECENT, oldest first
    seen: tuple[str, ...] = ()  # at most MAX_SEEN event ids, oldest first
    protected_at: datetime | None = None  # the start of the last backup that paid
    paid_by: str = ""  # that backup's name
    etag: str | None = field(default=None, compare=False)

    @property
    def is_pending(self) -> bool:
        return self.count > 0 and self.first is not None and self.last is not None

    def oldest_age(self, now: datetime) -> timedelta | None:
        """How long the oldest unprotected change has been unprotected."""
        if not self.is_pending or self.first is None:
            return None
        return max(timedelta(0), utc(now) - self.first)

    def what(self) -> list[str]:
        return [r.what for r in self.recent]


def merge(pending: PendingChange | None, change: Change) -> PendingChange:
    """The pending change with ``change`` counted; the same object when it changes nothing
    (a duplicate event id, or a change older than the backup that last paid)."""
    current = pending or PendingChange(service=change.service)
    if change.event_id in current.seen:
        return current
    at = utc(change.at)
    if current.protected_at is not None and at < current.protected_at:
        return current  # already inside a backup (a late or redelivered event)
    first = at if current.first is None or not current.is_pending else min(current.first, at)
    last = at if current.last is None or not current.is_pending else max(current.last, at)
    recent = sorted((*current.recent, Recent(at, change.what)), key=lambda r: r.at)
    return replace(
        current,
        first=first,
        last=last,
        count=(current.count if current.is_pending else 0) + 1,
        recent=tuple(recent[-MAX_RECENT:]),
        seen=(*current.seen, change.event_id)[-MAX_SEEN:],
    )


def pay(pending: PendingChange, backup_name: str, started_at: datetime) -> PendingChange:
    """The pending change after a backup that started at ``started_at`` succeeded.

    Changes before the start are in the backup. Changes at or after it may not be (APIM:
    "changes made during a backup may be lost"), so they stay pending, their age counted
    from the backup's start: never younger than they are."""
    started = utc(started_at)
    if pending.protected_at is not None and started <= pending.protected_at:
        return pending  # an older backup: it pays nothing new
    paid = replace(pending, protected_at=started, paid_by=backup_name)
    if not pending.is_pending or pending.last is None or pending.last < started:
        return replace(paid, first=None, last=None, count=0, recent=())
    after = tuple(r for r in pending.recent if r.at >= started)
    complete = len(after) < len(pending.recent) or pending.count <= len(pending.recent)
    # When the list held every change since the start, it says exactly how many and when
    # the first came; else at least that many, and the first no earlier than the start.
    first = after[0].at if complete and after else started
    return replace(paid, first=max(first, started), count=max(len(after), 1), recent=after)


@dataclass(frozen=True)
class DebouncePolicy:
    quiet: timedelta  # CHANGE_QUIET_MINUTES
    max_delay: timedelta  # CHANGE_MAX_DELAY_MINUTES
    per_day: int  # CHANGE_BACKUPS_PER_DAY

    @classmethod
    def minutes(cls, quiet: int = 15, max_delay: int = 60, per_day: int = 12) -> DebouncePolicy:
        return cls(timedelta(minutes=quiet), timedelta(minutes=max_delay), per_day)


@dataclass(frozen=True)
class Decision:
    due: bool
    reason: str
    due_at: datetime | None = None  # when it becomes due if nothing else changes


def backup_due(
    pending: PendingChange | None,
    now: datetime,
    policy: DebouncePolicy,
    backups_last_day: int,
    covering_start: datetime | None = None,
) -> Decision:
    """Whether a change backup of this service should start now, and why (not).

    ``backups_last_day``: change backups of this service started in the 24 hours
    before ``now`` (a rolling day: the cap holds in every 24-hour window).
    ``covering_start``: when the newest running (or not yet counted) backup of the
    service started; one that started after the last change will pay it."""
    if pending is None or not pending.is_pending or pending.first is None or pending.last is None:
        return Decision(False, "no pending change")
    now = utc(now)
    if covering_start is not None and utc(covering_start) > pending.last:
        return Decision(False, "a backup that started after the last change will pay it")
    quiet_at = pending.last + policy.quiet
    overdue_at = pending.first + policy.max_delay
    due_at = min(quiet_at, overdue_at)
    if backups_last_day >= policy.per_day:
        return Decision(
            False,
            f"daily cap: {backups_last_day} change backup(s) in 24 h "
            f"(CHANGE_BACKUPS_PER_DAY={policy.per_day})",
            due_at,
        )
    if policy.quiet <= timedelta(0):
        return Decision(True, "CHANGE_QUIET_MINUTES is 0: back up at the next tick", now)
    if now >= quiet_at:
        return Decision(True, f"quiet for {_minutes(now - pending.last)}", quiet_at)
    if now >= overdue_at:
        return Decision(
            True, f"oldest change {_minutes(now - pending.first)} old (max delay)", overdue_at
        )
    return Decision(
        False,
        f"last change {_minutes(now - pending.last)} ago: waiting for "
        f"{_minutes(policy.quiet)} of quiet, or until {overdue_at:%H:%M:%S}Z at the latest",
        due_at,
    )


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:.1f} min"
