"""The pre-checks' refusals as an operator reads them (docs/http-api.md, the error codes),
and a poll's verdict at the timeout's edge (docs/reliability.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.rules import errors
from shared.rules.checks import (
    Outcome,
    Verdict,
    check_backup_start,
    check_sku_match,
    check_target_allowed,
    judge_poll,
    require_backup_found,
    require_idle,
    require_no_cors,
    require_not_expired,
    require_succeeded,
    resolve_service,
)
from shared.rules.model import Status
from shared.rules.naming import ServiceId
from shared.rules.service import PollResult, PollState, ServiceInfo
from tests.rules.test_checks import NOW, record

A = ServiceId("s", "rg", "contoso")
B = ServiceId("s", "rg", "fabrikam")


def _refusal(error: type[errors.ProductError], call, *args) -> str:
    with pytest.raises(error) as caught:
        call(*args)
    return str(caught.value)


def test_a_request_naming_no_service_gets_the_only_one_or_a_list() -> None:
    assert resolve_service([A], None) is A
    assert resolve_service([A], "  ") is A
    assert resolve_service([A, B], "FABRIKAM") is B
    assert _refusal(errors.BadRequest, resolve_service, [A, B], "") == (
        "'service' is required: more than one service is configured (contoso, fabrikam)"
    )
    assert _refusal(errors.ServiceNotConfigured, resolve_service, [A], "x" * 300) == (
        f"Service '{'x' * 200}' is not in APIM_SERVICES"
    )


def test_a_restore_target_must_be_listed() -> None:
    assert check_target_allowed([A, B], "Fabrikam") is B
    assert _refusal(errors.TargetNotAllowed, check_target_allowed, [A], "y" * 300) == (
        f"Service '{'y' * 200}' is not in RESTORE_TARGETS"
    )


def test_backup_start_refusals_in_their_order() -> None:
    assert _refusal(
        errors.UnsupportedSku,
        check_backup_start,
        ServiceInfo("Consumption", "Succeeded", True),
        3,
        "contoso",
        "acct",
    ) == (
        "contoso is on the Consumption tier: API Management offers backup and restore only on "
        "Developer, Basic, Standard and Premium"
    )
    assert _refusal(
        errors.WorkspaceGatewaysPresent,
        check_backup_start,
        ServiceInfo("Premium", "Succeeded", True),
        3,
        "contoso",
        "acct",
    ) == (
        "contoso has workspace gateways: API Management does not support backup or restore "
        "of such a service"
    )
    assert _refusal(
        errors.CorsEnabled,
        check_backup_start,
        ServiceInfo("Premium", "Succeeded", False),
        2,
        "contoso",
        "acct",
    ) == (
        "The Blob service of storage account acct has 2 CORS rule(s): API Management's "
        "backup fails while CORS is enabled; remove the rules"
    )
    check_backup_start(ServiceInfo("Basic", "Succeeded", False), 0, "contoso", "acct")
    require_no_cors(None, "acct")  # unreadable: APIM is left to fail on its own


def test_a_busy_target_is_refused_naming_its_state() -> None:
    assert (
        _refusal(
            errors.OperationInProgress,
            require_idle,
            ServiceInfo("Premium", "Activating", False),
            "contoso",
        )
        == "contoso is Activating: another management operation is running on it"
    )
    require_idle(ServiceInfo("Premium", "Failed", False), "contoso")


def test_restore_pre_check_messages() -> None:
    assert _refusal(errors.BackupNotFound, require_backup_found, None, "n.apimbackup") == (
        "No backup named n.apimbackup in the ledger"
    )
    failed = record(Status.FAILED)
    assert require_backup_found(failed, "n") is failed
    assert _refusal(errors.BackupNotSucceeded, require_succeeded, failed) == (
        "Backup svc-20261126T120000Z.apimbackup is Failed: only a Succeeded backup can be restored"
    )
    old = record(age=timedelta(days=31))
    assert _refusal(errors.BackupExpired, require_not_expired, old, NOW) == (
        f"Backup svc-20261126T120000Z.apimbackup expired at "
        f"{old.expires_at:%Y-%m-%d %H:%M:%S} UTC: API Management cannot restore a backup "
        "older than 30 days (Cannot restore: backup expired)"
    )
    assert _refusal(errors.SkuMismatch, check_sku_match, "Premium", "Standard", "fab") == (
        "fab is on the Standard tier but the backup was taken on Premium: API Management "
        "restores only into the same tier"
    )
    check_sku_match("Premium", "Premium", "fab")


STARTED = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=90)


def test_a_poll_exactly_at_the_timeout_still_runs() -> None:
    running = PollResult(PollState.RUNNING)
    assert judge_poll(running, STARTED, STARTED + TIMEOUT, TIMEOUT) == Verdict(Outcome.RUNNING)


def test_timeouts_say_how_long_and_what_the_last_poll_said() -> None:
    late = STARTED + TIMEOUT + timedelta(seconds=1)
    assert judge_poll(PollResult(PollState.RUNNING), STARTED, late, TIMEOUT) == Verdict(
        Outcome.FAILED, "Timed out: still not finished after 90 minutes"
    )
    assert judge_poll(
        PollResult(PollState.UNKNOWN, error="HTTP 500"), STARTED, late, TIMEOUT
    ) == Verdict(
        Outcome.FAILED, "Timed out: still not finished after 90 minutes (last poll: HTTP 500)"
    )
    assert judge_poll(
        PollResult(PollState.UNKNOWN, refused="403 AuthorizationFailed: no"), STARTED, late, TIMEOUT
    ) == Verdict(
        Outcome.FAILED, "Timed out after 90 minutes without a status: 403 AuthorizationFailed: no"
    )


def test_a_failure_without_a_message_says_apim_reported_it() -> None:
    assert judge_poll(PollResult(PollState.FAILED), STARTED, STARTED, TIMEOUT) == Verdict(
        Outcome.FAILED, "API Management reported a failure"
    )
    assert judge_poll(PollResult(PollState.SUCCEEDED), STARTED, STARTED, TIMEOUT) == Verdict(
        Outcome.SUCCEEDED
    )
