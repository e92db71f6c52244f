"""The owed-backup row and the schedule's mark as docs/ledger.md describes their columns
("Owed scheduled backups", "The scheduled run's mark"), and health's `missedSchedule`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.rules.debts import Debt, TickMark

SINCE = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
NEXT = datetime(2026, 3, 1, 2, 5, tzinfo=UTC)
ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-a"


class Entity(dict[str, Any]):
    """A row as the Tables SDK returns it: a dict carrying its ETag in ``metadata``."""

    def __init__(self, values: dict[str, Any], etag: str) -> None:
        super().__init__(values)
        self.metadata = {"etag": etag}


def _debt(**changes: Any) -> Debt:
    values: dict[str, Any] = {
        "service": "apim-a",
        "service_id": ID,
        "since": SINCE,
        "attempts": 2,
        "last_error": "ServiceUpdating",
        "next_attempt_at": NEXT,
        "operation_id": "op-1",
    }
    return Debt(**(values | changes))


def test_a_debt_is_written_with_exactly_the_documented_columns() -> None:
    # A non-UTC offset is stored as the same moment in UTC: every time in the ledger is UTC.
    plus_two = timezone(timedelta(hours=2))
    entity = _debt(since=SINCE.astimezone(plus_two)).to_entity()
    assert entity == {
        "PartitionKey": "owed",
        "RowKey": "apim-a",
        "ServiceId": ID,
        "Since": SINCE,
        "Attempts": 2,
        "LastError": "ServiceUpdating",
        "NextAttemptAt": NEXT,
        "OperationId": "op-1",
    }
    assert entity["Since"].utcoffset() == timedelta(0)


def test_last_error_is_kept_to_1000_characters() -> None:
    entity = _debt(last_error="x" * 1001).to_entity()
    assert entity["LastError"] == "x" * 1000


def test_a_naive_time_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="naive"):
        _debt(next_attempt_at=NEXT.replace(tzinfo=None)).to_entity()


def test_a_row_reads_back_as_the_debt_it_was_with_its_etag() -> None:
    debt = _debt()
    read = Debt.from_entity(Entity(debt.to_entity(), etag="W/1"))
    assert read == Debt(**{**debt.__dict__, "etag": "W/1"})


def test_a_row_missing_the_optional_columns_reads_with_their_defaults() -> None:
    read = Debt.from_entity({"RowKey": "apim-b", "Since": SINCE, "NextAttemptAt": NEXT})
    assert read == Debt(
        service="apim-b",
        service_id="",
        since=SINCE,
        attempts=0,
        last_error="",
        next_attempt_at=NEXT,
        operation_id="",
        etag=None,
    )


def test_values_stored_as_other_types_are_read_as_the_documented_types() -> None:
    read = Debt.from_entity(
        {
            "RowKey": "apim-b",
            "Since": SINCE,
            "NextAttemptAt": NEXT,
            "Attempts": "3",
            "LastError": 409,
            "OperationId": 7,
        }
    )
    assert (read.attempts, read.last_error, read.operation_id) == (3, "409", "7")


def test_health_shows_a_debt_as_missed_schedule_in_utc_iso_8601() -> None:
    assert _debt().to_api() == {
        "since": "2026-03-01T02:00:00Z",
        "attempts": 2,
        "lastError": "ServiceUpdating",
        "nextAttemptAt": "2026-03-01T02:05:00Z",
    }


def test_the_schedule_mark_reads_ran_at_and_covered() -> None:
    ran = datetime(2026, 3, 1, 2, 1, tzinfo=UTC)
    assert TickMark.from_entity({"RanAt": ran, "Covered": SINCE}) == TickMark(ran, SINCE)
    assert TickMark.from_entity({"RanAt": ran}) == TickMark(ran, None)
    assert TickMark.PARTITION == "schedule" and TickMark.ROW == "tick"
