"""Injected faults: what the real SDK retries, and what reaches the caller."""

from __future__ import annotations

from datetime import datetime

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from devstack.stack import LocalStack
from tests.emulator import RG, make_client, params

pytestmark = pytest.mark.stack


@pytest.fixture
def fast(emulator: LocalStack) -> LocalStack:
    emulator.control.set_retry_after(0)
    return emulator


def _statuses(stack: LocalStack, fragment: str) -> list[int | None]:
    return [r["status"] for r in stack.control.requests() if fragment in r["path"]]


def test_429_with_retry_after_on_the_post_is_retried(fast: LocalStack):
    fast.control.inject_fault(method="POST", path_contains="/backup", status=429, retry_after=0)

    make_client(fast).api_management_service.begin_backup(
        RG, "contoso-apim", params("a.apimbackup")
    ).result()

    assert _statuses(fast, "/backup") == [429, 202]  # faulted requests are logged too
    assert [op["status"] for op in fast.control.operations()] == ["Succeeded"]


def test_503_on_a_poll_waits_for_retry_after_then_succeeds(fast: LocalStack):
    fast.control.inject_fault(
        method="GET", path_contains="/operationresults/", status=503, retry_after=1
    )

    make_client(fast).api_management_service.begin_backup(
        RG, "contoso-apim", params("b.apimbackup")
    ).result()

    polls = [r for r in fast.control.requests() if "/operationresults/" in r["path"]]
    assert [r["status"] for r in polls] == [503, 200]
    waited = datetime.fromisoformat(polls[1]["time"]) - datetime.fromisoformat(polls[0]["time"])
    assert waited.total_seconds() >= 0.9


def test_500_until_retries_run_out_reaches_the_caller(fast: LocalStack):
    fast.control.inject_fault(method="POST", path_contains="/backup", status=500, times=10)

    with pytest.raises(HttpResponseError) as caught:
        make_client(fast, retry_total=2).api_management_service.begin_backup(
            RG, "contoso-apim", params("c.apimbackup")
        )

    assert caught.value.status_code == 500
    # azure-core retries a POST on 500 too: 1 try + 2 retries, and nothing started.
    assert _statuses(fast, "/backup") == [500, 500, 500]
    assert fast.control.operations() == []


def test_a_dropped_connection_is_retried_on_get(fast: LocalStack):
    fast.control.inject_fault(method="GET", path_contains="/service/contoso-apim", action="drop")

    service = make_client(fast).api_management_service.get(RG, "contoso-apim")

    assert service.name == "contoso-apim"
    assert _statuses(fast, "/service/contoso-apim") == [None, 200]
    assert fast.control.requests()[0]["fault"] == "drop"


def test_a_dropped_connection_without_retries_is_an_error(fast: LocalStack):
    fast.control.inject_fault(method="GET", path_contains="/service/contoso-apim", action="drop")

    with pytest.raises(ServiceResponseError):
        make_client(fast, retry_total=0).api_management_service.get(RG, "contoso-apim")

    assert make_client(fast).api_management_service.get(RG, "contoso-apim").name == "contoso-apim"


def test_faults_match_method_and_path_and_are_used_up(fast: LocalStack):
    fast.control.inject_fault(method="POST", path_contains="/restore", status=503, times=5)
    client = make_client(fast)

    client.api_management_service.get(RG, "contoso-apim")  # neither method nor path match

    assert _statuses(fast, "/service/contoso-apim") == [200]
    fast.control.clear_faults()
    client.api_management_service.begin_backup(RG, "contoso-apim", params("d.apimbackup")).result()
    assert 503 not in _statuses(fast, "")


def test_the_log_redacts_the_access_key(fast: LocalStack):
    client = make_client(fast)
    client.api_management_service.begin_backup(
        RG, "contoso-apim", params("e.apimbackup", "AccessKey", access_key=fast.storage_key)
    ).result()

    post = next(r for r in fast.control.requests() if r["method"] == "POST")
    assert post["body"]["accessKey"] == "<redacted>"
    assert post["body"]["accessType"] == "AccessKey"
    assert fast.storage_key not in str(fast.control.requests())


def test_an_accepted_fault_starts_the_operation_and_loses_only_the_answer(fast: LocalStack):
    fast.control.inject_fault(method="POST", path_contains="/backup", action="drop", accept=True)

    with pytest.raises(ServiceResponseError):
        make_client(fast, retry_total=0).api_management_service.begin_backup(
            RG, "contoso-apim", params("f.apimbackup")
        )

    [operation] = fast.control.operations()
    assert operation["backupName"] == "f.apimbackup"
    [post] = [r for r in fast.control.requests() if r["method"] == "POST"]
    assert post["fault"] == "drop" and post["acceptedStatus"] == 202


def test_an_accepted_500_starts_the_operation(fast: LocalStack):
    fast.control.inject_fault(method="POST", path_contains="/backup", status=500, accept=True)

    with pytest.raises(HttpResponseError) as caught:
        make_client(fast, retry_total=0).api_management_service.begin_backup(
            RG, "contoso-apim", params("g.apimbackup")
        )

    assert caught.value.status_code == 500
    assert [op["backupName"] for op in fast.control.operations()] == ["g.apimbackup"]
