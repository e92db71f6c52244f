"""The NCRONTAB rules exactly: each field's values and range, steps, ranges, lists and
names, the error message for each fault, and the exact previous firing time."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.rules.ncrontab import Schedule, is_of_run, parse, previous_run


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# Fields ------------------------------------------------------------------------------------


def test_every_field_at_star_is_its_full_range_and_unrestricted():
    assert parse("* * * * * *") == Schedule(
        seconds=frozenset(range(60)),
        minutes=frozenset(range(60)),
        hours=frozenset(range(24)),
        days=frozenset(range(1, 32)),
        months=frozenset(range(1, 13)),
        weekdays=frozenset(range(7)),
        days_restricted=False,
        weekdays_restricted=False,
    )


def test_a_restricted_day_and_day_of_week_are_both_marked_restricted():
    schedule = parse("0 0 3 1 * MON")
    assert schedule.days_restricted is True
    assert schedule.weekdays_restricted is True
    assert schedule.days == frozenset({1})
    assert schedule.weekdays == frozenset({1})


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("5", {5}),
        ("*/20", {0, 20, 40}),
        ("5/15", {5, 20, 35, 50}),  # a value with a step runs to the field's end
        ("10-40/10", {10, 20, 30, 40}),
        ("10-13", {10, 11, 12, 13}),
        ("1,3-5,50/5", {1, 3, 4, 5, 50, 55}),
        ("59", {59}),
        ("0-59/30", {0, 30}),
    ],
)
def test_second_field_values(text: str, values: set[int]):
    assert parse(f"{text} 0 0 * * *").seconds == frozenset(values)


def test_names_of_months_and_days_in_any_case():
    schedule = parse("0 0 0 * jan,Jul,DEC-dec Mon-fri")
    assert schedule.months == frozenset({1, 7, 12})
    assert schedule.weekdays == frozenset({1, 2, 3, 4, 5})
    assert parse("0 0 0 * * SUN,sat").weekdays == frozenset({0, 6})
    assert parse("0 0 0 * FEB/3 *").months == frozenset({2, 5, 8, 11})


def test_each_field_has_its_own_range():
    assert parse("59 59 23 31 12 6") == Schedule(
        frozenset({59}),
        frozenset({59}),
        frozenset({23}),
        frozenset({31}),
        frozenset({12}),
        frozenset({6}),
        True,
        True,
    )
    assert parse("0 0 0 1 1 0").days == frozenset({1})


# Faults, each with its message -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("60 0 2 * * *", "second: '60' is outside 0-59"),
        ("0 60 2 * * *", "minute: '60' is outside 0-59"),
        ("0 0 24 * * *", "hour: '24' is outside 0-23"),
        ("0 0 2 0 * *", "day: '0' is outside 1-31"),
        ("0 0 2 32 * *", "day: '32' is outside 1-31"),
        ("0 0 2 * 0 *", "month: '0' is outside 1-12"),
        ("0 0 2 * 13 *", "month: '13' is outside 1-12"),
        ("0 0 2 * * 7", "day-of-week: '7' is outside 0-6"),
        ("0 0 2 * * 5-7", "day-of-week: '5-7' is outside 0-6"),
        ("0 0 2 25-35/5 * *", "day: '25-35/5' is outside 1-31"),
        ("x 0 2 * * *", "second: 'x' is not a number"),
        ("0 y 2 * * *", "minute: 'y' is not a number"),
        ("0 0 two * * *", "hour: 'two' is not a number"),
        ("0 0 2 ? * *", "day: '?' is not a number"),
        ("0 0 2 * Foo *", "month: 'Foo' is not a number"),
        ("0 0 2 * * Funday", "day-of-week: 'Funday' is not a number"),
        ("0 0 1-2-3 * * *", "hour: '2-3' is not a number"),
        ("*/x 0 2 * * *", "second: '*/x' is not *, a value, a range or a step"),
        ("0 */-1 2 * * *", "minute: '*/-1' is not *, a value, a range or a step"),
        ("*/0 0 2 * * *", "second: a step of 0 in '*/0'"),
        ("0 30-10 2 * * *", "minute: the range '30-10' runs backwards"),
        ("0 0 2 * DEC-JAN *", "month: the range 'DEC-JAN' runs backwards"),
        ("0 2 * * *", "expected six fields (second minute hour day month day-of-week), got 5"),
        ("0 0 2 * * * *", "expected six fields (second minute hour day month day-of-week), got 7"),
        ("", "expected six fields (second minute hour day month day-of-week), got 0"),
    ],
)
def test_each_fault_has_its_exact_message(expression: str, message: str):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse(expression)


# Previous runs -----------------------------------------------------------------------------


def test_the_latest_second_of_the_minute_not_the_first():
    every_15 = "*/15 * * * * *"
    assert previous_run(every_15, at(2026, 7, 10, 12, 0, 50)) == at(2026, 7, 10, 12, 0, 45)
    assert previous_run(every_15, at(2026, 7, 10, 12, 0, 45)) == at(2026, 7, 10, 12, 0, 45)
    assert previous_run(every_15, at(2026, 7, 10, 12, 0, 14)) == at(2026, 7, 10, 12, 0, 0)
    assert previous_run("5,40 30 * * * *", at(2026, 7, 10, 12, 59)) == at(2026, 7, 10, 12, 30, 40)


def test_the_latest_minute_and_hour_before_now():
    assert previous_run("0 */5 * * * *", at(2026, 7, 10, 12, 7, 3)) == at(2026, 7, 10, 12, 5)
    assert previous_run("0 0 2,14 * * *", at(2026, 7, 10, 13, 59, 59)) == at(2026, 7, 10, 2)
    assert previous_run("0 0 2,14 * * *", at(2026, 7, 10, 1)) == at(2026, 7, 9, 14)
    # Today's hour not yet reached: later minutes of an earlier hour still count.
    assert previous_run("0 50 10,12 * * *", at(2026, 7, 10, 12, 10)) == at(2026, 7, 10, 10, 50)


def test_day_or_day_of_week_when_both_are_restricted():
    # 2026-07-01 is a Wednesday, 2026-07-06 a Monday, 2026-06-01 a Monday (both at once).
    first_or_monday = "0 0 3 1 * MON"
    assert previous_run(first_or_monday, at(2026, 7, 5, 12)) == at(2026, 7, 1, 3)
    assert previous_run(first_or_monday, at(2026, 7, 7, 12)) == at(2026, 7, 6, 3)
    assert previous_run("0 0 3 1 * *", at(2026, 7, 7, 12)) == at(2026, 7, 1, 3)
    assert previous_run("0 0 3 * * MON", at(2026, 7, 5, 12)) == at(2026, 6, 29, 3)
    assert previous_run("0 0 3 * 7 MON", at(2026, 8, 1)) == at(2026, 7, 27, 3)


def test_a_rare_schedule_still_has_a_previous_run_and_an_impossible_one_none():
    assert previous_run("0 0 0 29 2 *", at(2027, 3, 1)) == at(2024, 2, 29)
    assert previous_run("0 0 0 31 2 *", at(2027, 3, 1)) is None


def test_a_parsed_schedule_is_taken_as_it_is():
    schedule = parse("0 0 2 * * *")
    assert previous_run(schedule, at(2026, 7, 10, 12)) == at(2026, 7, 10, 2)


def test_now_in_another_zone_is_read_as_utc():
    plus_two = timezone(timedelta(hours=2))
    now = datetime(2026, 7, 10, 1, 30, tzinfo=plus_two)  # 2026-07-09 23:30 UTC
    found = previous_run("0 0 23 * * *", now)
    assert found == at(2026, 7, 9, 23)
    assert found is not None and found.tzinfo is UTC


@pytest.fixture
def local_zone_five_hours_behind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "XST+05")  # POSIX: local time is UTC-5
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_zone_five_hours_behind")
def test_the_hosts_local_zone_does_not_move_the_schedule():
    # The schedule is UTC (WEBSITE_TIME_ZONE unset); the machine's zone must not matter.
    assert previous_run("0 0 23 * * *", at(2026, 7, 10, 1)) == at(2026, 7, 9, 23)


def test_is_of_run_uses_the_tolerance_it_is_given():
    due = at(2026, 7, 10, 2)
    minute = timedelta(minutes=1)
    assert is_of_run(due - timedelta(seconds=30), due, minute)
    assert is_of_run(due - minute, due, minute)
    assert not is_of_run(due - minute - timedelta(microseconds=1), due, minute)
    assert not is_of_run(due - timedelta(seconds=1), due, timedelta(0))
    assert is_of_run(due, due, timedelta(0))
