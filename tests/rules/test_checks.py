from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.rules import errors
from shared.rules.checks import (
    Outcome,
    check_backup_start,
    check_sku_match,
    judge_poll,
    require_backup_found,
    require_not_expired,
    require_succeeded,
    resolve_service,
)
from shared.rules.model import BackupRecord, Status, Trigger
from shared.rules.service import PollResult, PollState, ServiceInfo
from shared.settings import Settings

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SUB = "00000000-0000-0000-0000-000000000001"


def rid(name: str) -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ApiManagement/service/{name}"
    )


def settings(*names: str) -> Settings:
    return Settings.from_env(
        {
            "APIM_SERVICES": ",".join(rid(n) for n in names),
            "BACKUP_STORAGE_ACCOUNT": "devstoreaccount1",
            "BACKUP_STORAGE": "UseDevelopmentStorage=true",
        }
    )


def record(status: Status = Status.SUCCEEDED, age: timedelta = timedelta(days=1)) -> BackupRecord:
    return BackupRecord(
        service="svc",
        backup_name="svc-20261126T120000Z.apimbackup",
        service_id=rid("svc"),
        storage_account="acct",
        container="apim-backups",
        status=status,
        trigger=Trigger.SCHEDULE,
        created_at=NOW - age,
        sku="Standard",
    )


def test_resolve_service():
    one = settings("alpha")
    assert resolve_service(one.apim_services, None).name == "alpha"
    two = settings("alpha", "beta")
    assert resolve_service(two.apim_services, "BETA").name == "beta"
    assert resolve_service(two.apim_services, rid("beta")).name == "beta"
    with pytest.raises(errors.BadRequest):
        resolve_service(two.apim_services, None)
    with pytest.raises(errors.ServiceNotConfigured):
        resolve_service(two.apim_services, "gamma")


@pytest.mark.parametrize(
    ("info", "cors", "error"),
    [
        (ServiceInfo("Consumption", "Succeeded", False), 0, errors.UnsupportedSku),
        (ServiceInfo("StandardV2", "Succeeded", False), 0, errors.UnsupportedSku),
        (ServiceInfo("Premium", "Succeeded", True), 0, errors.WorkspaceGatewaysPresent),
        (ServiceInfo("Premium", "Succeeded", False), 2, errors.CorsEnabled),
        # Order: the tier is reported before gateways and CORS.
        (ServiceInfo("BasicV2", "Succeeded", True), 1, errors.UnsupportedSku),
    ],
)
def test_backup_prechecks(info: ServiceInfo, cors: int, error: type[errors.ProductError]):
    with pytest.raises(error):
        check_backup_start(info, cors, "svc", "acct")


@pytest.mark.parametrize("tier", ["Developer", "Basic", "Standard", "Premium"])
def test_backup_tiers_pass(tier: str):
    check_backup_start(ServiceInfo(tier, "Succeeded", False), 0, "svc", "acct")


def test_backup_usable_rules():
    found = record()
    assert require_backup_found(found, "n") is found
    require_succeeded(found)
    require_not_expired(found, NOW)
    with pytest.raises(errors.BackupNotFound):
        require_backup_found(None, "n")
    for status in (Status.RUNNING, Status.FAILED, Status.PRUNED):
        with pytest.raises(errors.BackupNotSucceeded):
            require_succeeded(record(status))
    with pytest.raises(errors.BackupExpired, match="Cannot restore: backup expired"):
        require_not_expired(record(age=timedelta(days=30)), NOW)
    require_not_expired(record(age=timedelta(days=30) - timedelta(seconds=1)), NOW)


def test_sku_mismatch_names_both_tiers():
    check_sku_match("Premium", "Premium", "t")
    with pytest.raises(errors.SkuMismatch) as caught:
        check_sku_match("Standard", "Premium", "t")
    assert "Standard" in caught.value.message and "Premium" in caught.value.message


def test_judge_poll():
    timeout = timedelta(hours=4)
    started = NOW - timedelta(minutes=5)
    assert (
        judge_poll(PollResult(PollState.RUNNING), started, NOW, timeout).outcome is Outcome.RUNNING
    )
    assert (
        judge_poll(PollResult(PollState.UNKNOWN), started, NOW, timeout).outcome is Outcome.RUNNING
    )
    assert (
        judge_poll(PollResult(PollState.SUCCEEDED), started, NOW, timeout).outcome
        is Outcome.SUCCEEDED
    )
    failed = judge_poll(PollResult(PollState.FAILED, error="X: y"), started, NOW, timeout)
    assert (failed.outcome, failed.error) == (Outcome.FAILED, "X: y")
    late = judge_poll(
        PollResult(PollState.RUNNING), NOW - timeout - timedelta(seconds=1), NOW, timeout
    )
    assert late.outcome is Outcome.FAILED and "240 minutes" in (late.error or "")
    # A success seen late is still a success.
    ok_late = judge_poll(PollResult(PollState.SUCCEEDED), NOW - timeout * 2, NOW, timeout)
    assert ok_late.outcome is Outcome.SUCCEEDED


def test_a_refused_poll_waits_then_times_out_naming_the_refusal():
    timeout = timedelta(hours=4)
    refused = PollResult(
        PollState.UNKNOWN, error="HTTP 403", refused="Resource Manager refused (403 X: y)"
    )
    assert judge_poll(refused, NOW - timedelta(minutes=5), NOW, timeout).outcome is (
        Outcome.RUNNING
    )
    late = judge_poll(refused, NOW - timeout - timedelta(seconds=1), NOW, timeout)
    assert (late.outcome, late.error) == (
        Outcome.FAILED,
        "Timed out after 240 minutes without a status: Resource Manager refused (403 X: y)",
    )


def test_a_refusal_is_one_bounded_line_without_url_queries():
    from shared.rules import arm

    body = json.dumps(
        {
            "error": {
                "code": "AuthorizationFailed",
                "message": "The client 'c' may not perform\n'read' over scope "
                "'https://x.example/a?sig=SECRET&se=1' or the scope is invalid.",
            }
        }
    )
    refusal = arm.refusal(body, 403)
    assert refusal == (
        "403 AuthorizationFailed: The client 'c' may not perform 'read' over scope "
        "'https://x.example/a' or the scope is invalid."
    )
    assert arm.refusal("<html>", 401) == "401 no error code: no error message"
    long = json.dumps({"error": {"code": "C", "message": "m" * 5000}})
    assert len(arm.refusal(long, 403)) == arm.MAX_REFUSAL_LENGTH


def test_record_round_trips_through_an_entity():
    original = record().with_changes(size_bytes=2**40, completed_at=NOW, error=None)
    entity = original.to_entity()
    assert entity["ExpiresAt"] - entity["CreatedAt"] == timedelta(days=30)
    assert entity["SizeBytes"] == (2**40, "Edm.Int64")  # the table API's typed value
    plain = dict(entity)
    plain["SizeBytes"] = entity["SizeBytes"][0]
    assert BackupRecord.from_entity(plain) == original


def test_naive_times_are_refused_in_the_ledger():
    naive = record().with_changes(created_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        naive.to_entity()


@pytest.mark.parametrize("state", ["Updating", "Activating", "Terminating"])
def test_busy_states_refuse(state: str):
    from shared.rules.checks import require_idle

    with pytest.raises(errors.OperationInProgress, match=state):
        require_idle(ServiceInfo("Premium", state, False), "svc")


@pytest.mark.parametrize("state", ["Succeeded", "Failed", "Stopped", ""])
def test_a_failed_service_may_still_be_restored(state: str):
    from shared.rules.checks import require_idle

    require_idle(ServiceInfo("Premium", state, False), "svc")


def test_operation_urls_compare_by_origin():
    from shared.rules.armurl import OperationUrlRejected, arm_poll_url

    endpoint = "https://management.azure.com"
    assert arm_poll_url(endpoint, "https://Management.azure.com:443/subscriptions/x") == (
        "https://management.azure.com/subscriptions/x"
    )
    for other in (
        "https://management.azure.com.evil.example/subscriptions/x",
        "http://management.azure.com/subscriptions/x",
    ):
        with pytest.raises(OperationUrlRejected):
            arm_poll_url(endpoint, other)


def test_retry_after_is_capped():
    from types import SimpleNamespace

    from shared.adapters.clients import CappedRetryPolicy

    policy = CappedRetryPolicy(10)
    asked = SimpleNamespace(http_response=SimpleNamespace(headers={"Retry-After": "120"}))
    assert policy.get_retry_after(asked) == 10  # type: ignore[arg-type]
    short = SimpleNamespace(http_response=SimpleNamespace(headers={"Retry-After": "3"}))
    assert policy.get_retry_after(short) == 3  # type: ignore[arg-type]
