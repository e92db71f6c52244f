"""Debouncing, value by value (shared.rules.debounce): the exact decision, reason and due
time at each boundary, and the exact pending change after merging and paying. The
property tests (test_debounce.py) show the rules hold over streams; these pin each one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.rules.changes import Change
from shared.rules.debounce import (
    MAX_RECENT,
    MAX_SEEN,
    DebouncePolicy,
    Decision,
    PendingChange,
    Recent,
    backup_due,
    merge,
    pay,
)

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
SERVICE = "contoso-apim"
POLICY = DebouncePolicy.minutes(quiet=15, max_delay=60, per_day=12)


def at(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def change(m: float, event_id: str | None = None, what: str = "apis/a updated") -> Change:
    return Change(event_id or f"e-{m}", SERVICE, at(m), what)


def pending(first: float, last: float, count: int = 2) -> PendingChange:
    return PendingChange(SERVICE, first=at(first), last=at(last), count=count)


def test_the_policy_defaults_are_the_documented_ones():
    assert DebouncePolicy.minutes() == DebouncePolicy(
        timedelta(minutes=15), timedelta(minutes=60), 12
    )
    assert DebouncePolicy.minutes(0, 5, 1) == DebouncePolicy(timedelta(0), timedelta(minutes=5), 1)


def test_the_oldest_age_is_measured_from_the_first_change_and_never_negative():
    p = pending(0, 10)
    assert p.oldest_age(at(25)) == timedelta(minutes=25)
    assert p.oldest_age(at(-1)) == timedelta(0)  # a clock behind the event's time
    plus_one = timezone(timedelta(hours=1))
    assert p.oldest_age(datetime(2026, 12, 2, 9, 30, tzinfo=plus_one)) == timedelta(minutes=30)
    with pytest.raises(ValueError, match="naive datetime"):
        p.oldest_age(datetime(2026, 12, 2, 8, 30))
    assert PendingChange(SERVICE).oldest_age(at(5)) is None
    assert PendingChange(SERVICE, first=at(0), last=at(1), count=0).oldest_age(at(5)) is None


def test_quiet_exactly_reached_is_due_one_microsecond_before_is_not():
    p = pending(0, 10)
    assert backup_due(p, at(25), POLICY, 0) == Decision(True, "quiet for 15.0 min", at(25))
    early = at(25) - timedelta(microseconds=1)
    assert backup_due(p, early, POLICY, 0) == Decision(
        False,
        "last change 15.0 min ago: waiting for 15.0 min of quiet, or until 09:00:00Z at the latest",
        at(25),
    )


def test_the_max_delay_exactly_reached_is_due_even_while_changes_continue():
    p = pending(0, 55)
    assert backup_due(p, at(60), POLICY, 0) == Decision(
        True, "oldest change 60.0 min old (max delay)", at(60)
    )
    assert backup_due(p, at(59.5), POLICY, 0) == Decision(
        False,
        "last change 4.5 min ago: waiting for 15.0 min of quiet, or until 09:00:00Z at the latest",
        at(60),
    )


def test_when_both_hold_the_quiet_period_is_the_reason():
    assert backup_due(pending(0, 50), at(70), POLICY, 0) == Decision(
        True, "quiet for 20.0 min", at(65)
    )


def test_the_daily_cap_exactly_reached_holds_one_below_does_not():
    p = pending(0, 10)
    assert backup_due(p, at(30), POLICY, 12) == Decision(
        False, "daily cap: 12 change backup(s) in 24 h (CHANGE_BACKUPS_PER_DAY=12)", at(25)
    )
    assert backup_due(p, at(30), POLICY, 11).due is True
    zero_quiet = DebouncePolicy.minutes(quiet=0, per_day=1)
    assert backup_due(p, at(10), zero_quiet, 1).due is False  # the cap before quiet 0


def test_quiet_zero_is_due_at_once_with_now_as_the_due_time():
    assert backup_due(pending(0, 10), at(10), DebouncePolicy.minutes(quiet=0), 0) == Decision(
        True, "CHANGE_QUIET_MINUTES is 0: back up at the next tick", at(10)
    )


def test_a_covering_backup_holds_only_if_it_started_after_the_last_change():
    p = pending(0, 10)
    expected = Decision(False, "a backup that started after the last change will pay it")
    assert backup_due(p, at(30), POLICY, 0, covering_start=at(10.5)) == expected
    # Started at the very moment of the last change: that change may not be in it.
    assert backup_due(p, at(30), POLICY, 0, covering_start=at(10)).due is True
    plus_one = datetime(2026, 12, 2, 9, 11, tzinfo=timezone(timedelta(hours=1)))
    assert backup_due(p, at(30), POLICY, 0, covering_start=plus_one) == expected


def test_nothing_pending_in_any_form_is_not_due():
    none = Decision(False, "no pending change")
    assert backup_due(None, at(0), POLICY, 0) == none
    assert backup_due(PendingChange(SERVICE), at(0), POLICY, 0) == none
    assert backup_due(PendingChange(SERVICE, first=at(0), count=1), at(90), POLICY, 0) == none
    assert backup_due(PendingChange(SERVICE, last=at(0), count=1), at(90), POLICY, 0) == none


def test_now_at_another_offset_is_compared_as_utc_and_a_naive_one_refused():
    p = pending(0, 10)
    plus_one = timezone(timedelta(hours=1))
    assert backup_due(p, datetime(2026, 12, 2, 9, 25, tzinfo=plus_one), POLICY, 0).due is True
    assert backup_due(p, datetime(2026, 12, 2, 9, 24, tzinfo=plus_one), POLICY, 0).due is False
    with pytest.raises(ValueError, match="naive datetime"):
        backup_due(p, datetime(2026, 12, 2, 8, 25), POLICY, 0)


def test_merging_counts_orders_and_remembers_each_change():
    first = merge(None, change(5, "a", "apis/a updated"))
    assert first == PendingChange(
        SERVICE,
        first=at(5),
        last=at(5),
        count=1,
        recent=(Recent(at(5), "apis/a updated"),),
        seen=("a",),
    )
    both = merge(first, change(2, "b", "apis/b deleted"))  # arrives late, happened earlier
    assert (both.first, both.last, both.count) == (at(2), at(5), 2)
    assert both.what() == ["apis/b deleted", "apis/a updated"]
    assert both.seen == ("a", "b")
    assert merge(both, change(9, "a")) is both  # a duplicate event id


def test_merging_after_a_payment_starts_a_new_count_and_drops_older_events():
    paid = pay(merge(None, change(5, "a")), "b1", at(10))
    assert paid.count == 0 and paid.protected_at == at(10)
    assert merge(paid, change(9, "old")) is paid  # inside that backup already
    fresh = merge(paid, change(12, "c"))
    assert (fresh.first, fresh.last, fresh.count) == (at(12), at(12), 1)
    assert fresh.seen == ("a", "c")
    assert merge(paid, change(10, "at-start")).count == 1  # at the start: not inside it


def test_the_lists_keep_the_newest_only():
    p = None
    for n in range(MAX_SEEN + 5):
        p = merge(p, change(n, f"id-{n}", f"w{n}"))
    assert p is not None
    assert p.count == MAX_SEEN + 5
    assert p.seen == tuple(f"id-{n}" for n in range(5, MAX_SEEN + 5))
    assert p.what() == [f"w{n}" for n in range(MAX_SEEN + 5 - MAX_RECENT, MAX_SEEN + 5)]


def test_a_payment_exactly_at_the_last_change_leaves_that_change_pending():
    p = merge(merge(None, change(0, "a", "x")), change(10, "b", "y"))
    after = pay(p, "b1", at(10))
    assert (after.first, after.last, after.count) == (at(10), at(10), 1)
    assert after.what() == ["y"] and after.paid_by == "b1" and after.protected_at == at(10)
    cleared = pay(p, "b2", at(10) + timedelta(microseconds=1))
    assert (cleared.first, cleared.last, cleared.count, cleared.recent) == (None, None, 0, ())
    assert cleared.paid_by == "b2"


def test_an_incomplete_list_counts_at_least_what_it_shows_from_the_start():
    p = None
    for n in range(MAX_RECENT + 3):  # 13 changes, 10 remembered (minutes 3 to 12)
        p = merge(p, change(n, f"id-{n}"))
    assert p is not None
    after = pay(p, "b1", at(8))
    assert after.count == 5 and after.first == at(8)  # minutes 8..12
    early = pay(p, "b0", at(1))  # before anything the list holds
    assert early.count == MAX_RECENT and early.first == at(1)


def test_paying_is_idempotent_and_an_older_backup_pays_nothing():
    p = merge(None, change(0, "a"))
    once = pay(p, "b1", at(5))
    assert pay(once, "b1", at(5)) is once
    assert pay(once, "b0", at(4)) is once
    nothing = pay(PendingChange(SERVICE), "b1", at(5))
    assert (nothing.count, nothing.protected_at, nothing.paid_by) == (0, at(5), "b1")


def test_a_row_that_holds_times_but_no_count_starts_afresh():
    """A stored row whose count is 0 (or whose times are missing) is not pending, whatever
    else it holds: the next change starts the count and both times anew."""
    stale = PendingChange(SERVICE, first=at(0), last=at(30), count=0)
    fresh = merge(stale, change(10, "n"))
    assert (fresh.first, fresh.last, fresh.count) == (at(10), at(10), 1)
    timeless = PendingChange(SERVICE, count=3)
    assert merge(timeless, change(10, "n")).count == 1
    paid = pay(stale, "b1", at(5))
    assert (paid.first, paid.last, paid.count) == (None, None, 0)


def test_a_complete_list_gives_the_first_change_after_the_start():
    # Changes at 0 and 10, a backup started at 7: only the one at 10 stays, and its time
    # is known exactly (the list held every change).
    p = merge(merge(None, change(0, "a")), change(10, "b"))
    after = pay(p, "b1", at(7))
    assert (after.first, after.count) == (at(10), 1)
    # Every change after the start, the list complete (2 changes, 2 remembered).
    q = merge(merge(None, change(8, "c")), change(10, "d"))
    later = pay(q, "b1", at(5))
    assert q.protected_at is None
    assert (later.first, later.count) == (at(8), 2)
