"""The Functions host's rule for timer schedules (six-field NCRONTAB), as settings and the
runtime tests apply it to every timer schedule."""

from __future__ import annotations

import pytest

from shared.rules.ncrontab import parse


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 2 * * *",
        "0 */5 * * * *",
        "0 0 4 * * *",
        "*/30 * * * * *",
        "0 30 9 * * Mon-Fri",
        "0 0 0 1 Jan,Jul *",
        "5,10,15 0-30/10 1-23/2 1-31 1-12 0-6",
    ],
)
def test_valid_schedules(expression: str) -> None:
    assert parse(expression).seconds  # parsed, and fires at some second


@pytest.mark.parametrize(
    ("expression", "fault"),
    [
        ("0 2 * * *", "six fields"),  # classic five-field cron: the host refuses it
        ("0 0 2 * * * *", "six fields"),
        ("60 0 2 * * *", "second"),
        ("0 60 2 * * *", "minute"),
        ("0 0 24 * * *", "hour"),
        ("0 0 2 0 * *", "day"),
        ("0 0 2 * 13 *", "month"),
        ("0 0 2 * * 7", "day-of-week"),
        ("0 */0 * * * *", "step of 0"),
        ("0 30-10 * * * *", "backwards"),
        ("0 0 2 * * Funday", "day-of-week"),
        ("0 0 2 ? * *", "day"),
        ("%BACKUP_SCHEDULE% * * * * *", "second"),
        ("", "six fields"),
    ],
)
def test_invalid_schedules_name_the_field(expression: str, fault: str) -> None:
    with pytest.raises(ValueError, match=fault):
        parse(expression)


def test_a_tick_fired_a_few_milliseconds_early_belongs_to_the_run() -> None:
    # The host fires ...01:59:59.996 for 02:00 (azure-functions-host #7398, #8254).
    from datetime import UTC, datetime, timedelta

    from shared.rules.ncrontab import EARLY_FIRE_TOLERANCE, is_of_run, previous_run, run_began

    due = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
    early = due - timedelta(milliseconds=4)
    assert previous_run("0 0 2 * * *", due + timedelta(minutes=10)) == due
    assert previous_run("0 0 2 * * *", early) == due - timedelta(days=1)  # the plain rule misses it
    assert is_of_run(early, due)
    assert is_of_run(early.replace(microsecond=0), due)  # the backup's name: ...T015959Z
    assert is_of_run(due - EARLY_FIRE_TOLERANCE, due)
    assert not is_of_run(due - EARLY_FIRE_TOLERANCE - timedelta(microseconds=1), due)
    assert not is_of_run(due - timedelta(days=1), due)  # yesterday's run is not tonight's
    assert run_began(due) == due - EARLY_FIRE_TOLERANCE
    assert timedelta(seconds=1) <= EARLY_FIRE_TOLERANCE <= timedelta(seconds=30)
