"""Starts that survive throttling and never duplicate (issue 13 item 1), against the
emulator through the real SDK: throttled starts are retried within the budget; an
ambiguous answer is recorded as unconfirmed and settled from evidence."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

import function_app
from shared.jobs.backups import start_backup
from shared.jobs.operations import LOCK_GRACE, finish_running
from shared.jobs.restores import RestoreRequest, start_restore
from shared.rules.arm import START_RETRY_BUDGET_SECONDS
from shared.rules.model import Status, Trigger
from tests.product import Product, body_of, get_operation, http

pytestmark = pytest.mark.stack


def post_backup(service: str = "contoso-apim"):
    return function_app.start_backup(
        http("POST", "backups", json.dumps({"service": service}).encode())
    )


@pytest.fixture
def waits(product: Product) -> list[float]:
    """The throttle waits the adapter asked for, instead of sleeping them."""
    asked: list[float] = []
    product.runtime.apim.sleep = asked.append
    return asked


def backup_posts(product: Product) -> list[dict]:
    return product.arm_requests("POST", "/backup")


def blobs(product: Product) -> list[str]:
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    names = container.list_blob_names() if container.exists() else []
    return [n for n in names if n.endswith(".apimbackup")]  # backups, not their manifests


def test_429_then_503_with_retry_after_end_in_one_202_and_one_backup(
    product: Product, waits: list[float]
):
    control = product.stack.control
    control.inject_fault(method="POST", path_contains="/backup", status=429, retry_after=7)
    control.inject_fault(method="POST", path_contains="/backup", status=503, retry_after=11)

    response = post_backup()

    assert response.status_code == 202
    assert waits == [7, 11]  # Retry-After honoured, each once
    assert [r["status"] for r in backup_posts(product)] == [429, 503, 202]
    assert len(control.operations()) == 1
    done = body_of(get_operation(body_of(response)["operationId"]))
    assert done["status"] == "Succeeded"
    rows = list(product.runtime.ledger.records())
    assert [r.status for r in rows] == [Status.SUCCEEDED]
    assert blobs(product) == [rows[0].backup_name]


def test_throttled_past_the_budget_gives_up_without_starting(product: Product, waits: list[float]):
    product.stack.control.inject_fault(
        method="POST", path_contains="/backup", status=429, retry_after=45, times=5
    )
    response = post_backup()
    assert response.status_code == 502
    assert "throttled" in body_of(response)["error"]["message"]
    # 45 s asked twice would pass the 60 s budget: one wait, two tries.
    assert waits == [45] and sum(waits) <= START_RETRY_BUDGET_SECONDS
    assert len(backup_posts(product)) == 2
    assert product.stack.control.operations() == []
    assert product.runtime.operations.lock_holder("contoso-apim") is None


def test_a_refused_start_is_signalled_even_if_the_process_dies_before_the_lock(
    product: Product, waits: list[float], caplog: pytest.LogCaptureFixture
):
    """The Failed row is stored, then the process dies freeing the lock: nothing settles
    that start again, so its BackupFailed must already be out."""
    product.stack.control.inject_fault(
        method="POST", path_contains="/backup", status=429, retry_after=1, times=3
    )
    store = product.runtime.operations

    def dying_release(service: str, operation_id: str) -> None:
        raise KeyboardInterrupt("simulated crash")  # no handler catches it

    store.release = dying_release  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    [operation] = list(store.all())
    assert operation.status is Status.FAILED
    failed = [r.getMessage() for r in caplog.records if "SIGNAL BackupFailed" in r.getMessage()]
    assert len(failed) == 1 and operation.operation_id in failed[0]


def test_at_most_three_tries(product: Product, waits: list[float]):
    product.stack.control.inject_fault(
        method="POST", path_contains="/backup", status=429, retry_after=1, times=5
    )
    assert post_backup().status_code == 502
    assert waits == [1, 1]
    assert len(backup_posts(product)) == 3


@pytest.mark.parametrize(
    ("fault", "accepted"),
    [
        ({"action": "drop", "accept": True}, True),
        ({"status": 500, "accept": True}, True),
        ({"status": 504, "accept": True}, True),
        ({"status": 503, "accept": True}, True),  # 503 without Retry-After: ambiguous
        ({"action": "drop"}, False),
        ({"status": 502}, False),
    ],
)
def test_an_ambiguous_start_is_settled_from_evidence_never_duplicated(
    product: Product, waits: list[float], fault: dict, accepted: bool
):
    control = product.stack.control
    control.set_duration(600)
    control.inject_fault(method="POST", path_contains="/backup", **fault)

    response = post_backup()

    # Recorded, not retried: one POST, one operation row, the lock held.
    assert response.status_code == 202
    body = body_of(response)
    assert body["status"] == "Running"
    assert len(backup_posts(product)) == 1 and waits == []
    operation = product.runtime.operations.get(body["operationId"])
    assert operation is not None and operation.unconfirmed and operation.operation_url == ""
    assert operation.start_error
    assert product.runtime.operations.lock_holder("contoso-apim") == body["operationId"]
    assert post_backup().status_code == 409  # no second backup while it is unresolved

    product.clock.now += LOCK_GRACE + timedelta(seconds=1)
    if accepted:
        # The service is Updating: the backup may be ours, so wait.
        assert finish_running(product.runtime) == []
        control.advance_clock(601)
    settled = finish_running(product.runtime)
    assert [op.operation_id for op in settled] == [body["operationId"]]
    row = product.runtime.ledger.get("contoso-apim", body["backupName"])
    assert row is not None
    if accepted:
        assert settled[0].status is Status.SUCCEEDED
        assert row.status is Status.SUCCEEDED and (row.size_bytes or 0) > 0
        assert blobs(product) == [body["backupName"]]
    else:
        assert settled[0].status is Status.FAILED
        assert "did not take the backup" in (settled[0].error or "")
        assert row.status is Status.FAILED and blobs(product) == []
    assert len(control.operations()) == (1 if accepted else 0)
    assert len(backup_posts(product)) == 1  # never a second start
    assert product.runtime.operations.lock_holder("contoso-apim") is None
    assert not list(product.runtime.operations.running())


def test_an_unconfirmed_backup_that_finished_fast_is_succeeded_at_once(product: Product):
    product.stack.control.inject_fault(
        method="POST", path_contains="/backup", action="drop", accept=True
    )
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    assert started.operation.unconfirmed
    # No grace needed: the blob is there and the service is idle.
    assert [op.status for op in finish_running(product.runtime)] == [Status.SUCCEEDED]


def test_a_crash_after_apim_accepted_keeps_the_backup(product: Product):
    """The process dies between APIM's 202 and recording the URL: the row is still
    unconfirmed, and the blob APIM wrote makes it Succeeded. Nothing is lost."""
    store = product.runtime.operations
    real_save = store.save
    calls = {"n": 0}

    def dying_save(operation):
        calls["n"] += 1
        if operation.operation_url:
            raise KeyboardInterrupt("simulated crash")  # no handler catches it
        return real_save(operation)

    store.save = dying_save  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    store.save = real_save  # type: ignore[method-assign]

    [operation] = list(store.running())
    assert operation.unconfirmed and operation.operation_url == ""
    settled = finish_running(product.runtime)
    assert [op.status for op in settled] == [Status.SUCCEEDED]
    [row] = list(product.runtime.ledger.records())
    assert row.status is Status.SUCCEEDED and blobs(product) == [row.backup_name]
    assert len(backup_posts(product)) == 1


def test_an_unconfirmed_restore_is_failed_as_unverified_once_the_target_is_idle(
    product: Product,
):
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    finish_running(product.runtime)
    control = product.stack.control
    control.set_duration(1800)
    control.inject_fault(method="POST", path_contains="/restore", status=500, accept=True)

    operation = start_restore(
        product.runtime,
        RestoreRequest(started.backup.backup_name, "contoso-standby"),
        Trigger.CLI,
    )
    assert operation.unconfirmed and operation.is_running
    product.clock.now += LOCK_GRACE + timedelta(seconds=1)
    assert finish_running(product.runtime) == []  # the target is Updating: wait
    control.advance_clock(1801)
    [settled] = finish_running(product.runtime)
    assert settled.status is Status.FAILED
    assert "cannot be verified" in (settled.error or "")
    assert product.runtime.operations.lock_holder("contoso-standby") is None
    assert len(product.arm_requests("POST", "/restore")) == 1


def test_a_finished_backup_is_not_timed_out_by_a_failed_poll(product: Product):
    """The first poll after the operation timeout is throttled: the blob and the idle
    service say the backup finished, so it is Succeeded, not a timeout."""
    from shared.jobs.operations import refresh

    product.stack.control.set_duration(600)
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    product.stack.control.advance_clock(601)
    product.clock.now += timedelta(minutes=product.runtime.settings.operation_timeout_minutes + 1)
    product.stack.control.inject_fault(
        method="GET", path_contains="/operationresults/", status=429, retry_after=60
    )

    progress = refresh(product.runtime, started.operation)

    assert progress.operation.status is Status.SUCCEEDED
    row = product.runtime.ledger.get("contoso-apim", started.backup.backup_name)
    assert row is not None and row.status is Status.SUCCEEDED and (row.size_bytes or 0) > 0


def test_a_503_with_retry_after_that_apim_took_is_not_lost_to_the_retrys_409(
    product: Product, waits: list[float], caplog: pytest.LogCaptureFixture
):
    """Issue 17, defect 3: APIM takes the backup but the answer is a 503 with Retry-After;
    the retry meets 409 (our own backup runs). After a retried try a 409 is ambiguous:
    the rows stay, the start is unconfirmed, and evidence settles it. The caller gets
    202, the ledger learns of the backup APIM ran, and no third POST is made."""
    control = product.stack.control
    control.set_duration(600)
    control.inject_fault(
        method="POST", path_contains="/backup", status=503, retry_after=2, accept=True
    )

    response = post_backup()

    assert [r["status"] for r in backup_posts(product)] == [503, 409]
    assert waits == [2]
    assert response.status_code == 202, body_of(response)
    body = body_of(response)
    operation = product.runtime.operations.get(body["operationId"])
    assert operation is not None and operation.unconfirmed and operation.operation_url == ""
    assert "409" in (operation.start_error or "")
    row = product.runtime.ledger.get("contoso-apim", body["backupName"])
    assert row is not None and row.status is Status.RUNNING
    assert product.runtime.operations.lock_holder("contoso-apim") == body["operationId"]

    product.clock.now += LOCK_GRACE + timedelta(seconds=1)
    assert finish_running(product.runtime) == []  # Updating: our backup may run; wait
    control.advance_clock(601)
    [settled] = finish_running(product.runtime)
    assert settled.status is Status.SUCCEEDED
    row = product.runtime.ledger.get("contoso-apim", body["backupName"])
    assert row is not None and row.status is Status.SUCCEEDED and (row.size_bytes or 0) > 0
    assert blobs(product) == [body["backupName"]]
    assert len(control.operations()) == 1 and len(backup_posts(product)) == 2
    assert product.runtime.operations.lock_holder("contoso-apim") is None
    assert "SIGNAL BackupFailed" not in caplog.text


def test_a_409_after_a_retry_that_was_someone_elses_operation_fails_from_evidence(
    product: Product, waits: list[float]
):
    """The other side of the same rule: the 429 was not taken, and a deployment began
    meanwhile, so the retry's 409 is not ours. Unconfirmed too (it cannot be told from
    the answer); once the service is idle without our blob, the backup is Failed, never
    a Succeeded without a blob, and the lock is freed."""
    from tests.emulator import RG, make_client, params

    control = product.stack.control
    control.set_duration(600)
    control.inject_fault(method="POST", path_contains="/backup", status=429, retry_after=3)

    def deployment_meanwhile(seconds: float) -> None:
        waits.append(seconds)
        make_client(product.stack).api_management_service.begin_backup(
            RG, "contoso-apim", params("deployment.apimbackup"), polling=False
        )

    product.runtime.apim.sleep = deployment_meanwhile
    response = post_backup()

    assert response.status_code == 202, body_of(response)
    body = body_of(response)
    product.clock.now += LOCK_GRACE + timedelta(seconds=1)
    assert finish_running(product.runtime) == []  # Updating: wait
    control.advance_clock(601)
    [settled] = finish_running(product.runtime)
    assert settled.status is Status.FAILED
    assert "did not take the backup" in (settled.error or "")
    row = product.runtime.ledger.get("contoso-apim", body["backupName"])
    assert row is not None and row.status is Status.FAILED
    assert product.runtime.operations.lock_holder("contoso-apim") is None
    ours = [r for r in backup_posts(product) if body["backupName"] in json.dumps(r)]
    assert [r["status"] for r in ours] == [429, 409]  # never a third


def test_a_409_on_the_first_try_is_another_operation_and_nothing_is_kept(product: Product):
    """Unchanged: with no earlier try, a 409 can only be someone else's operation."""
    control = product.stack.control
    control.inject_fault(method="POST", path_contains="/backup", status=409)

    response = post_backup()

    assert response.status_code == 409
    assert body_of(response)["error"]["code"] == "OperationInProgress"
    assert list(product.runtime.ledger.records()) == []
    assert list(product.runtime.operations.all()) == []
    assert product.runtime.operations.lock_holder("contoso-apim") is None


def test_a_429_without_retry_after_waits_5_seconds(product: Product, waits: list[float]):
    """docs/reliability.md: "5 s for a 429 without one"."""
    product.stack.control.inject_fault(method="POST", path_contains="/backup", status=429)

    response = post_backup()

    assert response.status_code == 202
    assert waits == [5]
    assert [r["status"] for r in backup_posts(product)] == [429, 202]


def test_a_503_with_a_future_http_date_retry_after_waits_until_that_date(
    product: Product, waits: list[float]
):
    """Retry-After as an HTTP date 30 s ahead: a throttle (not an ambiguous 503), waited
    until that moment, then one 202 and one backup."""
    when = (datetime.now(UTC) + timedelta(seconds=30)).replace(microsecond=0)
    product.stack.control.inject_fault(
        method="POST",
        path_contains="/backup",
        status=503,
        retry_after=format_datetime(when, usegmt=True),
    )

    response = post_backup()

    assert response.status_code == 202
    assert len(waits) == 1 and 20 <= waits[0] <= 30, waits
    assert [r["status"] for r in backup_posts(product)] == [503, 202]
    operation = product.runtime.operations.get(body_of(response)["operationId"])
    assert operation is not None and not operation.unconfirmed
