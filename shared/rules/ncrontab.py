"""The latest moment an NCRONTAB schedule (six fields, as the Functions timer uses) fired.

Housekeeping uses it to notice a scheduled run that never happened or never finished
(the host was down, storage was unreachable at 02:00): it asks when the schedule last
fired and whether that run left its mark. Pure functions, no I/O.

Fields: second minute hour day month day-of-week; each ``*``, a number, a range
``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of those; months and days may be
named (``JAN``, ``MON``); day-of-week 0 is Sunday. As in cron, when both day and
day-of-week are restricted a day matching either fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}
_DAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
# How far back to look: a yearly schedule still has a previous run.
LOOKBACK_DAYS = 366 * 4 + 1
# The Functions host fires a timer a little early at times: ...01:59:59.996 for 02:00
# (azure-functions-host #7398, #8254), 0.13 s (azure-webjobs-sdk-extensions #132), 5 s
# (#30). Whatever a tick this close before a firing time did belongs to that run.
EARLY_FIRE_TOLERANCE = timedelta(seconds=10)


@dataclass(frozen=True)
class Schedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_day or by_weekday
        return by_day and by_weekday


def _value(token: str, names: dict[str, int]) -> int:
    upper = token.upper()
    if upper in names:
        return names[upper]
    if not token.isdigit():
        raise ValueError(f"'{token}' is not a number")
    return int(token)


def _field(
    name: str, text: str, low: int, high: int, names: dict[str, int] | None = None
) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        if step_text and not step_text.isdigit():
            raise ValueError(f"{name}: '{part}' is not *, a value, a range or a step")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"{name}: a step of 0 in '{part}'")
        try:
            if body == "*":
                start, end = low, high
            elif "-" in body:
                first, _, last = body.partition("-")
                start, end = _value(first, names or {}), _value(last, names or {})
            else:
                start = _value(body, names or {})
                end = high if step_text else start
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if start > end:
            raise ValueError(f"{name}: the range '{body}' runs backwards")
        if not low <= start <= end <= high:
            raise ValueError(f"{name}: '{part}' is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse(expression: str) -> Schedule:
    """ValueError for anything this module does not understand."""
    fields = expression.split()
    if len(fields) != 6:
        raise ValueError(
            f"expected six fields (second minute hour day month day-of-week), got {len(fields)}"
        )
    sec, minute, hour, day, month, weekday = fields
    return Schedule(
        seconds=_field("second", sec, 0, 59),
        minutes=_field("minute", minute, 0, 59),
        hours=_field("hour", hour, 0, 23),
        days=_field("day", day, 1, 31),
        months=_field("month", month, 1, 12, _MONTHS),
        # 0-6 from Sunday, as NCRONTAB has it (no 7: the host's parser may refuse it).
        weekdays=_field("day-of-week", weekday, 0, 6, _DAYS),
        days_restricted=day != "*",
        weekdays_restricted=weekday != "*",
    )


def previous_run(expression: str | Schedule, now: datetime) -> datetime | None:
    """The latest moment at or before ``now`` (UTC) when the schedule fired; None if it
    never fired in the last four years."""
    schedule = parse(expression) if isinstance(expression, str) else expression
    now = now.astimezone(UTC)
    hours = sorted(schedule.hours, reverse=True)
    minutes = sorted(schedule.minutes, reverse=True)
    seconds = sorted(schedule.seconds, reverse=True)
    for back in range(LOOKBACK_DAYS):
        day = now.date() - timedelta(days=back)
        if not schedule.matches_day(day):
            continue
        for h in hours:
            if back == 0 and h > now.hour:
                continue
            for m in minutes:
                for s in seconds:
                    moment = datetime.combine(day, time(h, m, s), tzinfo=UTC)
                    if moment <= now:
                        return moment
    return None


def run_began(due: datetime, tolerance: timedelta = EARLY_FIRE_TOLERANCE) -> datetime:
    """The earliest moment that belongs to the run due at ``due``: a tick the host fired
    up to ``tolerance`` early is that run, with its mark and the backups it named by its
    own clock (``...T015959Z`` for 02:00)."""
    return due - tolerance


def is_of_run(moment: datetime, due: datetime, tolerance: timedelta = EARLY_FIRE_TOLERANCE) -> bool:
    """Whether ``moment`` (a tick's mark, a backup's time) is at or after the start of
    the run due at ``due``, early fires tolerated."""
    return moment >= run_began(due, tolerance)
