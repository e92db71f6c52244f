"""The pure rules behind issue 13: URL checks, evidence, backoff, NCRONTAB, signals."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from shared import signals
from shared.rules import ncrontab
from shared.rules.arm import conflict_is_ambiguous, retry_after_seconds, throttle_wait
from shared.rules.armurl import OperationUrlRejected, arm_poll_url
from shared.rules.debts import backoff
from shared.rules.evidence import Evidence, judge_unconfirmed
from shared.rules.service import PollState

ARM = "https://management.azure.com"
OP = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/a/operationresults/o"
# A Location in the shape API Management answers a backup, restore or delete (the shape
# seen in recorded Resource Manager traffic of the Azure SDK's APIM tests): under the
# service, "operationresults" in lower case, an id that is base64 with its "=" padding.
RECORDED = (
    "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000"
    "/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/contoso-apim"
    "/operationresults/d2VzdGV1cm9wZTpjb250b3NvLWFwaW1fUmVzdG9yZV9iN2E1YjBjMw==?api-version=2024-05-01"
)


@pytest.mark.parametrize(
    ("recorded", "sent"),
    [
        (f"{ARM}{OP}?api-version=2024-05-01", f"{ARM}{OP}?api-version=2024-05-01"),
        (RECORDED, RECORDED),
        (f"https://MANAGEMENT.azure.com:443{OP}", f"{ARM}{OP}"),
        (f"HTTPS://management.azure.com{OP}", f"{ARM}{OP}"),
        # Opaque tokens in the query may carry escapes, %2F and %40 included.
        (f"{ARM}{OP}?t=1&c=a%2Fb%40c%3D&s=x-y_z", f"{ARM}{OP}?t=1&c=a%2Fb%40c%3D&s=x-y_z"),
        (
            f"{ARM}/subscriptions/s/resourceGroups/rg(1).x/a",
            f"{ARM}/subscriptions/s/resourceGroups/rg(1).x/a",
        ),
    ],
)
def test_urls_kept_are_rebuilt_on_the_endpoint(recorded: str, sent: str):
    assert arm_poll_url(ARM, recorded) == sent


@pytest.mark.parametrize(
    "recorded",
    [
        f"https://evil.example{OP}",
        f"https://management.azure.com.evil.example{OP}",
        f"https://management.azure.com:444{OP}",
        f"https://evil.example\\@management.azure.com{OP}",
        f"https://evil.example%5C@management.azure.com{OP}",
        f"https://u@management.azure.com{OP}",
        f"{ARM}{OP}#frag",
        f"{ARM}{OP}?a=@b",
        f"{ARM}/subscriptions/%2e%2e/x",
        f"{ARM}/subscriptions/a%2Fb",
        f"{ARM}/subscriptions/a%40b",
        f"{ARM}/subscriptions/a/../b",
        f"{ARM}/subscriptions//x",
        f"{ARM}/subscriptions/..",
        f"{ARM}/tenants/x",
        f"{ARM}{OP}?a=%0d%0aHost:x",
        f"{ARM}{OP}\n",
        f"{ARM}/subscriptions/é",
        f"http://management.azure.com{OP}",
        "https://[::1]" + OP,
        f"{ARM}/subscriptions/%G0",
        "x" * 5000,
    ],
)
def test_urls_rejected(recorded: str):
    with pytest.raises(OperationUrlRejected) as caught:
        arm_poll_url(ARM, recorded)
    assert recorded not in str(caught.value) or len(recorded) < 3


NOW = datetime(2026, 11, 29, 2, 30, tzinfo=UTC)
GRACE = timedelta(minutes=10)


def judge(kind: str, evidence: Evidence, minutes: float):
    started = NOW - timedelta(minutes=minutes)
    return judge_unconfirmed(kind, evidence, started, NOW, GRACE, "b.apimbackup", "svc")


def test_evidence_for_a_backup():
    assert judge("backup", Evidence("Succeeded", 10), 1).state is PollState.SUCCEEDED
    assert judge("backup", Evidence("Updating", 10), 60).state is PollState.UNKNOWN
    assert judge("backup", Evidence("Updating", None), 60).state is PollState.UNKNOWN
    assert judge("backup", Evidence("Succeeded", None), 5).state is PollState.UNKNOWN
    late = judge("backup", Evidence("Succeeded", None), 11)
    assert late.state is PollState.FAILED and "did not take the backup" in (late.error or "")
    assert judge("backup", Evidence(None, None), 600).state is PollState.UNKNOWN


def test_evidence_for_a_restore():
    assert judge("restore", Evidence("Updating"), 60).state is PollState.UNKNOWN
    assert judge("restore", Evidence("Succeeded"), 5).state is PollState.UNKNOWN
    late = judge("restore", Evidence("Succeeded"), 11)
    assert late.state is PollState.FAILED and "cannot be verified" in (late.error or "")


def test_backoff_doubles_to_a_quarter_hour():
    assert [backoff(n).total_seconds() / 60 for n in range(1, 6)] == [5, 10, 15, 15, 15]
    assert backoff(10**6) == timedelta(minutes=15)


def test_retry_after_as_seconds_or_date():
    now = datetime.now(UTC)
    assert retry_after_seconds("7", now) == 7
    assert retry_after_seconds(None, now) is None
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now) == 0  # in the past


@pytest.mark.parametrize(
    ("expression", "now", "expected"),
    [
        ("0 0 2 * * *", "2026-11-29T02:00:00", "2026-11-29T02:00:00"),
        ("0 0 2 * * *", "2026-11-29T01:59:59", "2026-11-28T02:00:00"),
        ("0 0 2 * * *", "2026-11-29T13:00:00", "2026-11-29T02:00:00"),
        ("0 */5 * * * *", "2026-11-29T13:07:10", "2026-11-29T13:05:00"),
        ("0 30 9 * * MON-FRI", "2026-11-29T12:00:00", "2026-11-27T09:30:00"),  # a Sunday
        ("0 0 3 1 * *", "2026-11-29T00:00:00", "2026-11-01T03:00:00"),
        ("0 0 0 1 JAN *", "2026-11-29T00:00:00", "2026-01-01T00:00:00"),
        ("15,45 0 0,12 * * 0", "2026-11-29T12:00:30", "2026-11-29T12:00:15"),
        ("0 0 4 * * SUN", "2026-11-30T00:00:00", "2026-11-29T04:00:00"),
    ],
)
def test_previous_run(expression: str, now: str, expected: str):
    moment = datetime.fromisoformat(now).replace(tzinfo=UTC)
    assert ncrontab.previous_run(expression, moment) == datetime.fromisoformat(expected).replace(
        tzinfo=UTC
    )


@pytest.mark.parametrize(
    "expression", ["0 0 2 * *", "0 0 25 * * *", "x 0 2 * * *", "0 0 */0 * * *"]
)
def test_bad_schedules_are_refused(expression: str):
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        ncrontab.parse(expression)


def test_signal_format_and_level(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger=signals.LOGGER_NAME):
        signals.emit(
            "BackupFailed", service="contoso-apim", backupName="b", operationId="o", error="e"
        )
        signals.emit(
            signals.Signal.SCHEDULE_OWED,
            service="s",
            since=datetime(2026, 11, 29, 2, tzinfo=UTC),
            attempts=3,
            lastError="busy",
        )
    first, second = caplog.records
    assert first.getMessage() == (
        'SIGNAL BackupFailed {"backupName":"b","error":"e","operationId":"o","service":"contoso-apim"}'
    )
    assert first.levelno == logging.ERROR and first.name == "apim_backup.signals"
    assert second.levelno == logging.WARNING
    assert json.loads(second.getMessage().split(" ", 2)[2])["since"] == "2026-11-29T02:00:00Z"


def test_a_signal_with_wrong_fields_is_a_bug():
    with pytest.raises(ValueError, match="takes"):
        signals.emit("RpoBreached", service="s")
    with pytest.raises(ValueError):  # noqa: PT011
        signals.emit("NoSuchSignal", service="s")


def test_a_409_is_ambiguous_only_after_a_retried_try():
    """A first try's 409 is another operation; after a throttled try (which APIM may have
    taken all the same) it may be our own (issue 17, defect 3)."""
    assert conflict_is_ambiguous(1) is False
    assert conflict_is_ambiguous(2) is True
    assert conflict_is_ambiguous(3) is True


def test_a_429_without_retry_after_is_waited_5_seconds():
    now = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    assert throttle_wait(429, None, now) == 5
    assert throttle_wait(429, "", now) == 5
    assert throttle_wait(429, "12", now) == 12  # the header wins when there is one
    assert throttle_wait(503, None, now) is None  # a 503 without one is ambiguous


def test_a_future_http_date_retry_after_is_the_seconds_until_it():
    now = datetime(2026, 11, 27, 2, 0, 0, tzinfo=UTC)
    in_7_s = "Fri, 27 Nov 2026 02:00:07 GMT"
    assert retry_after_seconds(in_7_s, now) == 7
    assert throttle_wait(503, in_7_s, now) == 7  # a throttle: tried again after 7 s
    assert throttle_wait(429, in_7_s, now) == 7
