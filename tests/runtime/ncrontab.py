"""The Functions host's rule for timer schedules: a six-field NCRONTAB expression.

``{second} {minute} {hour} {day} {month} {day-of-week}``; each field is ``*``, a value,
a range ``a-b``, any of those with a step ``/n``, or a comma-separated list of them.
Months and days of the week may be named (``Jan``, ``Mon``). A five-field crontab (no
seconds) is refused, as the host refuses it for a timer trigger.
"""

from __future__ import annotations

import re

FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 6),
)
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_PART = re.compile(r"^(?P<base>\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?$")


def _value(text: str, field: str, low: int, high: int) -> int:
    names = MONTHS if field == "month" else DAYS if field == "day-of-week" else ()
    if text in names:
        return names.index(text) + (1 if field == "month" else 0)
    if not text.isdigit():
        raise ValueError(f"{field}: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{field}: {value} is outside {low}-{high}")
    return value


def validate(expression: str) -> None:
    """Raise ValueError naming the field at fault unless ``expression`` is valid."""
    fields = expression.split()
    if len(fields) != len(FIELDS):
        raise ValueError(f"expected six fields (with seconds), got {len(fields)}: {expression!r}")
    for text, (field, low, high) in zip(fields, FIELDS, strict=True):
        for part in text.lower().split(","):
            match = _PART.match(part)
            if match is None:
                raise ValueError(f"{field}: {part!r} is not *, a value, a range or a step")
            step = match["step"]
            if step is not None and int(step) == 0:
                raise ValueError(f"{field}: a step of 0")
            base = match["base"]
            if base == "*":
                continue
            first, _, last = base.partition("-")
            start = _value(first, field, low, high)
            if last and _value(last, field, low, high) < start:
                raise ValueError(f"{field}: the range {base} runs backwards")


def is_valid(expression: str) -> bool:
    try:
        validate(expression)
    except ValueError:
        return False
    return True
