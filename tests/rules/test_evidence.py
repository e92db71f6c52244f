"""Settling an unconfirmed start from evidence (docs/reliability.md): each verdict with the
message an operator reads, and the grace boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.rules.evidence import Evidence, judge_unconfirmed
from shared.rules.service import PollResult, PollState

NOW = datetime(2026, 11, 29, 2, 30, tzinfo=UTC)
GRACE = timedelta(minutes=10)


def judge(kind: str, evidence: Evidence, elapsed: timedelta) -> PollResult:
    return judge_unconfirmed(kind, evidence, NOW - elapsed, NOW, GRACE, "b.apimbackup", "svc")


def test_an_unreadable_state_asks_again() -> None:
    assert judge("backup", Evidence(None, 10), timedelta(hours=1)) == PollResult(
        PollState.UNKNOWN, error="the service's state could not be read"
    )


def test_a_blob_with_the_service_idle_is_a_finished_backup_even_empty() -> None:
    assert judge("backup", Evidence("Succeeded", 0), timedelta(0)).state is PollState.SUCCEEDED


@pytest.mark.parametrize("state", ["Updating", "ACTIVATING", "terminating"])
def test_a_busy_service_waits_even_with_a_blob(state: str) -> None:
    assert judge("backup", Evidence(state, 10), timedelta(hours=1)) == PollResult(
        PollState.UNKNOWN, error=f"start unconfirmed; svc is {state}"
    )


def test_within_the_grace_it_waits_and_at_its_end_too() -> None:
    assert judge("backup", Evidence("Succeeded"), GRACE) == PollResult(
        PollState.UNKNOWN, error="start unconfirmed; svc is Succeeded"
    )
    assert judge("restore", Evidence("Succeeded"), GRACE).state is PollState.UNKNOWN


def test_after_the_grace_an_idle_service_without_the_blob_failed_the_backup() -> None:
    assert judge("backup", Evidence("Succeeded"), GRACE + timedelta(minutes=2, seconds=59)) == (
        PollResult(
            PollState.FAILED,
            error=(
                "The start was not confirmed and, 12 minutes later, svc is Succeeded with no "
                "blob b.apimbackup: API Management did not take the backup"
            ),
        )
    )


def test_after_the_grace_a_restore_is_failed_as_unverified() -> None:
    assert judge("restore", Evidence("Failed", 10), GRACE + timedelta(seconds=1)) == PollResult(
        PollState.FAILED,
        error=(
            "The start was not confirmed and, 10 minutes later, svc is Failed: whether the "
            "restore of b.apimbackup ran cannot be verified; check the service and restore "
            "again if needed"
        ),
    )
