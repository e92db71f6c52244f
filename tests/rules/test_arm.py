"""Resource Manager's answers as docs/reliability.md reads them: a throttled start is tried
again (429, or 503 with Retry-After) after the wait asked for, or 5 s for a 429 that asks
none, at most 3 tries and 60 s of waiting; Retry-After on a status answer; the body of an
Azure-AsyncOperation status; what to check when a status request is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.rules import arm
from shared.rules.arm import (
    async_operation_state,
    may_try_again,
    poll_retry_after,
    refusal_advice,
    retry_after_seconds,
    throttle_wait,
)
from shared.rules.naming import ServiceId
from shared.rules.service import PollResult, PollState

NOW = datetime(2026, 3, 1, 2, 0, 0, tzinfo=UTC)


def test_the_documented_budgets() -> None:
    assert arm.START_TRIES == 3
    assert arm.START_RETRY_BUDGET_SECONDS == 60.0
    assert arm.DEFAULT_THROTTLE_WAIT_SECONDS == 5.0


@pytest.mark.parametrize(
    ("status", "retry_after", "wait"),
    [
        (429, None, 5.0),  # a 429 that asks no wait: 5 s
        (429, "", 5.0),
        (429, "not a number", 5.0),
        (429, "12", 12.0),
        (429, "0", 0.0),
        (503, "7", 7.0),  # 503 with Retry-After: Resource Manager did not take it
        (503, None, None),  # 503 alone is ambiguous: APIM may have taken the start
        (500, "7", None),
        (409, None, None),
        (None, "7", None),
        (200, None, None),
    ],
)
def test_which_answers_are_throttles_and_how_long_to_wait(
    status: int | None, retry_after: str | None, wait: float | None
) -> None:
    assert throttle_wait(status, retry_after, NOW) == wait


def test_a_future_http_date_retry_after_is_the_time_until_then() -> None:
    later = "Sun, 01 Mar 2026 02:00:30 GMT"
    assert retry_after_seconds(later, NOW) == 30.0
    assert throttle_wait(429, later, NOW) == 30.0
    assert throttle_wait(503, later, NOW) == 30.0


def test_a_past_date_or_negative_number_waits_nothing() -> None:
    assert retry_after_seconds("Sun, 01 Mar 2026 01:59:00 GMT", NOW) == 0.0
    assert retry_after_seconds("-4", NOW) == 0.0
    assert retry_after_seconds("2.5", NOW) == 2.5


def test_an_http_date_without_a_zone_is_read_as_utc() -> None:
    assert retry_after_seconds("Sun, 01 Mar 2026 02:00:10 -0000", NOW) == 10.0


def test_unreadable_retry_after_is_none() -> None:
    for value in (None, "", "soon", "Sun, 99 Foo 2026"):
        assert retry_after_seconds(value, NOW) is None


@pytest.mark.parametrize(
    ("attempt", "waited", "wait", "again"),
    [
        (1, 0.0, 5.0, True),
        (2, 50.0, 10.0, True),  # exactly the 60 s budget
        (2, 50.0, 10.5, False),  # over it
        (3, 0.0, 1.0, False),  # the third try was the last
    ],
)
def test_tries_and_waiting_both_have_a_budget(
    attempt: int, waited: float, wait: float, again: bool
) -> None:
    assert may_try_again(attempt, waited, wait) is again


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("10", 10), ("0", 1), ("-3", 1), (None, None), ("", None), ("soon", None), ("2.5", None)],
)
def test_retry_after_on_a_status_answer_is_whole_seconds_at_least_one(
    value: str | None, seconds: int | None
) -> None:
    assert poll_retry_after(value) == seconds


@pytest.mark.parametrize("status", ["Succeeded", "succeeded", "SUCCEEDED"])
def test_an_async_operation_that_succeeded(status: str) -> None:
    assert async_operation_state(f'{{"status": "{status}"}}') == PollResult(PollState.SUCCEEDED)


@pytest.mark.parametrize("status", ["Failed", "Canceled", "Cancelled", "failed"])
def test_an_async_operation_that_failed_carries_its_error(status: str) -> None:
    body = f'{{"status": "{status}", "error": {{"code": "BackupFailed", "message": "no access"}}}}'
    assert async_operation_state(body) == PollResult(
        PollState.FAILED, error="BackupFailed: no access"
    )


@pytest.mark.parametrize("status", ["InProgress", "Running", "Accepted"])
def test_any_other_async_operation_status_is_still_running(status: str) -> None:
    assert async_operation_state(f'{{"status": "{status}"}}') == PollResult(PollState.RUNNING)


@pytest.mark.parametrize(
    "text", ["", "not json", "[]", '{"name": "apim-a"}', '{"status": 3}', '{"status": null}']
)
def test_a_body_without_a_status_string_is_not_an_async_operation(text: str) -> None:
    assert async_operation_state(text) is None


SERVICE = ServiceId("sub", "rg", "apim-a")


def test_a_401_advises_checking_the_token() -> None:
    assert refusal_advice("401 InvalidAuthenticationToken: expired", 401, SERVICE) == (
        "Resource Manager refused the status request (401 InvalidAuthenticationToken: expired): "
        "check that the function's identity can get a token for Resource Manager"
    )


def test_a_403_names_the_permission_and_the_service() -> None:
    assert refusal_advice("403 AuthorizationFailed: no", 403, SERVICE) == (
        "Resource Manager refused the status request (403 AuthorizationFailed: no): "
        "check that the function's identity holds "
        "Microsoft.ApiManagement/service/operationresults/read on apim-a"
    )


def test_a_start_is_ambiguous_on_5xx_only() -> None:
    assert frozenset({500, 502, 503, 504}) == arm.AMBIGUOUS_START_STATUSES
    assert timedelta(seconds=arm.START_RETRY_BUDGET_SECONDS) < timedelta(seconds=230)


def test_a_failed_async_operation_without_an_error_body_says_so() -> None:
    assert async_operation_state('{"status": "Failed"}') == PollResult(
        PollState.FAILED, error="HTTP 200 from API Management"
    )


def test_a_refusal_of_exactly_the_bound_is_kept_whole() -> None:
    body = '{"error": {"code": "C", "message": "' + "m" * 993 + '"}}'
    said = arm.refusal(body, 403)
    assert len(said) == arm.MAX_REFUSAL_LENGTH == 1000
    assert said == "403 C: " + "m" * 993
    longer = arm.refusal(body.replace("m" * 993, "m" * 994), 403)
    assert len(longer) == 1000 and longer.endswith("m...")
