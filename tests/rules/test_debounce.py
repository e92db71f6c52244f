"""Debounced change backups (shared.rules.debounce), property-based: a simulated
housekeeping timer, change backups that take a few minutes, and event streams."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.rules.changes import Change
from shared.rules.debounce import (
    MAX_RECENT,
    DebouncePolicy,
    PendingChange,
    backup_due,
    merge,
    pay,
)

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
SERVICE = "contoso-apim"


def minute(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def change(m: float, event_id: str | None = None, what: str = "apis/a updated") -> Change:
    return Change(event_id or f"e-{m}", SERVICE, minute(m), what)


@dataclass
class Run:
    """What a simulated housekeeping timer did with a stream of changes."""

    starts: list[datetime] = field(default_factory=list)
    worst_age: timedelta = timedelta(0)  # the oldest unprotected change, at any tick
    pending: PendingChange | None = None


def simulate(
    arrivals: list[Change],
    policy: DebouncePolicy,
    *,
    tick: float = 1,
    duration: float = 5,
    horizon: float = 300,
) -> Run:
    """Ticks every ``tick`` minutes; each change merges when it arrives; a change backup
    starts when due (one at a time, like the lock), runs ``duration`` minutes, then pays."""
    run = Run()
    queue = sorted(arrivals, key=lambda c: c.at)
    running: datetime | None = None
    t = 0.0
    while t <= horizon:
        now = minute(t)
        if running is not None and running + timedelta(minutes=duration) <= now:
            run.pending = pay(run.pending or PendingChange(SERVICE), "b", running)
            running = None
        while queue and queue[0].at <= now:
            run.pending = merge(run.pending, queue.pop(0))
        age = run.pending.oldest_age(now) if run.pending else None
        run.worst_age = max(run.worst_age, age or timedelta(0))
        last_day = sum(1 for s in run.starts if now - s < timedelta(hours=24))
        decision = backup_due(run.pending, now, policy, last_day, covering_start=running)
        if decision.due and running is None:
            run.starts.append(now)
            running = now
        t += tick
    return run


DEFAULT = DebouncePolicy.minutes(quiet=15, max_delay=60, per_day=12)


@settings(max_examples=200)
@given(
    offsets=st.lists(
        st.floats(min_value=0, max_value=5, exclude_max=True), min_size=20, max_size=20
    ),
    tick=st.sampled_from([1, 5]),
)
def test_a_burst_of_20_changes_in_5_minutes_gives_one_backup_after_the_quiet_period(
    offsets: list[float], tick: int
):
    run = simulate([change(m) for m in offsets], DEFAULT, tick=tick)

    assert len(run.starts) == 1
    last = minute(max(offsets))
    assert last + timedelta(minutes=15) <= run.starts[0] < last + timedelta(minutes=15 + tick)
    assert run.pending is not None and not run.pending.is_pending


@settings(max_examples=50)
@given(
    tick=st.sampled_from([1, 5]),
    duration=st.integers(min_value=1, max_value=12),
    max_delay=st.sampled_from([30, 60, 90]),
)
def test_changes_every_minute_for_two_hours_back_up_at_most_every_max_delay(
    tick: int, duration: int, max_delay: int
):
    policy = DebouncePolicy.minutes(quiet=15, max_delay=max_delay, per_day=12)
    run = simulate([change(m) for m in range(120)], policy, tick=tick, duration=duration)

    # While changes keep coming, backups start no closer than the max delay; once they
    # stop, one more may follow after the quiet period, sooner than that.
    last_change = minute(119)
    during = [s for s in run.starts if s <= last_change]
    after = [s for s in run.starts if s > last_change]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert during and all(gap >= timedelta(minutes=max_delay) for gap in gaps), gaps
    assert len(after) <= 1
    if after and after[0] - during[-1] < timedelta(minutes=max_delay):
        assert after[0] >= last_change + timedelta(minutes=15)
    assert len(run.starts) <= 120 // max_delay + 1
    # ...and the changes never wait much longer than that: max delay, a tick, one backup.
    assert run.worst_age <= timedelta(minutes=max_delay + tick + duration)
    assert run.pending is not None and not run.pending.is_pending  # all paid in the end


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    per_day=st.integers(min_value=0, max_value=6),
    quiet=st.sampled_from([0, 5, 15]),
)
def test_the_daily_cap_holds_in_every_24_hours(seed: int, per_day: int, quiet: int):
    rng = random.Random(seed)  # noqa: S311 - a reproducible stream, not a secret
    arrivals = [change(rng.uniform(0, 3 * 24 * 60)) for _ in range(rng.randint(0, 150))]
    policy = DebouncePolicy.minutes(quiet=quiet, max_delay=60, per_day=per_day)
    run = simulate(arrivals, policy, tick=5, duration=5, horizon=4 * 24 * 60)

    for start in run.starts:
        window = [s for s in run.starts if start <= s < start + timedelta(hours=24)]
        assert len(window) <= per_day


_changes = st.lists(
    st.builds(
        change,
        st.floats(min_value=0, max_value=600),
        st.uuids().map(str),
        st.sampled_from(["apis/a updated", "products/p created", "namedValues/n write"]),
    ),
    max_size=30,
    unique_by=lambda c: c.event_id,
)


@given(changes=_changes, data=st.data())
def test_duplicates_change_nothing(changes: list[Change], data: st.DataObject):
    once = None
    for c in changes:
        once = merge(once, c)
    redelivered = data.draw(st.lists(st.sampled_from(changes), max_size=30)) if changes else []
    stream = data.draw(st.permutations([*changes, *redelivered]))
    twice = None
    for c in stream:
        twice = merge(twice, c)

    if once is None:
        assert twice is None
        return
    assert twice is not None
    assert (twice.first, twice.last, twice.count) == (once.first, once.last, once.count)
    assert {r.at for r in twice.recent} == {r.at for r in once.recent}
    assert set(twice.seen) == set(once.seen)


@given(changes=_changes)
def test_a_duplicate_returns_the_row_unchanged_so_nothing_is_written(changes: list[Change]):
    pending = None
    for c in changes:
        pending = merge(pending, c)
    for c in changes:
        assert merge(pending, c) is pending


@given(changes=_changes, start=st.floats(min_value=0, max_value=600))
def test_a_backup_pays_what_came_before_its_start_and_never_underestimates_the_rest(
    changes: list[Change], start: float
):
    pending = PendingChange(SERVICE)
    for c in changes:
        pending = merge(pending, c)
    paid = pay(pending, "b", minute(start))

    after = [c for c in changes if c.at >= minute(start)]
    if not after:
        assert not paid.is_pending
        return
    assert paid.is_pending and paid.first is not None
    assert minute(start) <= paid.first <= min(c.at for c in after)  # age never too young
    assert paid.last == max(c.at for c in after)
    assert min(len(after), MAX_RECENT) <= paid.count <= len(after)
    # A late delivery of something the backup already holds is not pending again.
    before = [c for c in changes if c.at < minute(start)]
    for c in before:
        assert merge(paid, Change("late-" + c.event_id, SERVICE, c.at, c.what)) is paid


def test_an_older_backup_finishing_late_pays_nothing_new():
    pending = merge(None, change(10))
    paid = pay(pending, "newer", minute(20))
    assert pay(paid, "older", minute(5)) is paid


def test_quiet_zero_starts_at_the_next_tick():
    policy = DebouncePolicy.minutes(quiet=0, max_delay=60, per_day=12)
    run = simulate([change(3.5)], policy, tick=5)
    assert run.starts == [minute(5)]


def test_per_day_zero_never_starts_a_change_backup_and_says_why():
    policy = DebouncePolicy.minutes(quiet=15, max_delay=60, per_day=0)
    pending = merge(None, change(0))
    decision = backup_due(pending, minute(500), policy, 0)
    assert not decision.due and "CHANGE_BACKUPS_PER_DAY=0" in decision.reason


def test_why_not_yet_names_the_quiet_period_and_the_latest_start():
    pending = merge(merge(None, change(0)), change(10))
    decision = backup_due(pending, minute(12), DEFAULT, 0)
    assert not decision.due
    assert "15.0 min of quiet" in decision.reason and "09:00:00Z" in decision.reason
    assert decision.due_at == minute(25)


def test_a_running_backup_that_started_after_the_last_change_holds_the_next_one():
    pending = merge(None, change(0))
    decision = backup_due(pending, minute(100), DEFAULT, 1, covering_start=minute(1))
    assert not decision.due and "will pay it" in decision.reason
    assert backup_due(pending, minute(100), DEFAULT, 1, covering_start=minute(-1)).due


def test_nothing_pending_is_never_due():
    assert not backup_due(None, T0, DEFAULT, 0).due
    assert not backup_due(PendingChange(SERVICE), T0, DEFAULT, 0).due
