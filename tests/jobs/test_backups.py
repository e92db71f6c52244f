"""Backups through the function handlers, against Azurite and the APIM emulator."""

from __future__ import annotations

import json
import threading
from datetime import UTC, timedelta

import pytest
from azure.data.tables import EdmType
from azure.functions.timer import TimerRequest

import function_app
from shared.jobs.backups import start_backup
from shared.jobs.housekeeping import settle_stranded_rows
from shared.jobs.operations import finish_running
from shared.rules.model import Status, Trigger
from tests.product import Product, body_of, get_operation, http

pytestmark = pytest.mark.stack

DEV_KEY_PREFIX = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1"


def post_backup(body: dict[str, str] | None = None):
    raw = json.dumps(body).encode() if body is not None else b""
    return function_app.start_backup(http("POST", "backups", raw))


def ledger_entities(product: Product) -> list[dict]:
    return list(product.runtime.ledger.table.list_entities())


def test_timer_backs_up_every_service_and_the_ledger_has_every_field(product: Product):
    function_app.scheduled_backup(TimerRequest(past_due=True))
    assert len(product.arm_requests("POST", "/backup")) == 2

    function_app.housekeeping_timer(TimerRequest())

    rows = {e["PartitionKey"]: e for e in ledger_entities(product)}
    assert set(rows) == {"contoso-apim", "contoso-standby"}
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    for service, row in rows.items():
        assert row["RowKey"] == row["BlobName"]
        assert row["RowKey"].startswith(f"{service}-") and row["RowKey"].endswith("Z.apimbackup")
        assert row["ServiceId"] == product.stack.service_id(service)
        assert row["StorageAccount"] == "devstoreaccount1"
        assert row["Container"] == product.runtime.settings.container
        assert row["Status"] == "Succeeded"
        assert row["Trigger"] == "schedule"
        assert row["Sku"] == "Developer"
        assert "/operationresults/" in row["OperationUrl"]
        for column in ("CreatedAt", "ExpiresAt", "CompletedAt"):
            assert row[column].tzinfo is not None, column
        assert row["ExpiresAt"] - row["CreatedAt"] == timedelta(days=30)
        assert row["CompletedAt"] >= row["CreatedAt"]
        size = container.get_blob_client(row["BlobName"]).get_blob_properties().size
        assert size > 0
        assert row["SizeBytes"].value == size
        assert row["SizeBytes"].edm_type is EdmType.INT64
        assert "Error" not in row and "PrunedAt" not in row


def test_post_answers_202_and_the_status_url_202_then_200(product: Product):
    product.stack.control.set_duration(600)
    response = post_backup({"service": "contoso-apim"})
    assert response.status_code == 202
    body = body_of(response)
    location = response.headers["Location"]
    assert location == body["statusUrl"]
    assert location.endswith(f"/api/operations/{body['operationId']}")
    assert int(response.headers["Retry-After"]) > 0
    assert body["service"] == "contoso-apim" and body["status"] == "Running"
    assert body["backupName"].startswith("contoso-apim-")

    running = get_operation(body["operationId"])
    assert running.status_code == 202
    assert body_of(running)["status"] == "Running"
    assert "Retry-After" in running.headers

    product.stack.control.advance_clock(601)
    done = get_operation(body["operationId"])
    assert done.status_code == 200
    assert body_of(done)["status"] == "Succeeded"
    item = body_of(
        function_app.get_backup(http("GET", "x", route_params={"backupName": body["backupName"]}))
    )
    assert item["status"] == "Succeeded" and item["restorable"] is True and item["sizeBytes"] > 0


def test_unknown_operation_is_404(product: Product):
    assert get_operation("0" * 32).status_code == 404
    assert get_operation("not-an-id").status_code == 404


@pytest.mark.parametrize(
    ("service", "code"),
    [
        ("consumption-apim", "UnsupportedSku"),
        ("v2-apim", "UnsupportedSku"),
        ("gateway-apim", "WorkspaceGatewaysPresent"),
    ],
)
def test_precheck_refusals_send_nothing_and_write_nothing(
    product: Product, service: str, code: str
):
    product.reconfigure(APIM_SERVICES=product.stack.service_id(service))
    response = post_backup({"service": service})
    assert response.status_code == 409
    assert body_of(response)["error"]["code"] == code
    assert product.arm_requests("POST") == []
    assert ledger_entities(product) == []


def test_cors_on_the_blob_service_is_refused(product: Product):
    from azure.storage.blob import CorsRule

    product.blob_service.set_service_properties(
        cors=[CorsRule(["https://portal.example"], ["GET"])]
    )
    response = post_backup({"service": "contoso-apim"})
    assert response.status_code == 409
    assert body_of(response)["error"]["code"] == "CorsEnabled"
    assert product.arm_requests("POST") == []
    assert ledger_entities(product) == []


def test_bad_requests(product: Product):
    unknown = post_backup({"service": "nowhere-apim"})
    assert unknown.status_code == 404
    assert body_of(unknown)["error"]["code"] == "ServiceNotConfigured"
    ambiguous = post_backup(None)
    assert ambiguous.status_code == 400
    assert "service" in body_of(ambiguous)["error"]["message"]
    garbage = function_app.start_backup(http("POST", "backups", b"{not json"))
    assert garbage.status_code == 400
    assert product.arm_requests("POST") == []


def test_one_service_needs_no_body(product: Product):
    product.reconfigure(APIM_SERVICES=product.stack.service_id("contoso-apim"))
    response = post_backup(None)
    assert response.status_code == 202
    assert body_of(response)["service"] == "contoso-apim"


def test_twenty_concurrent_posts_start_exactly_one_backup(product: Product):
    product.stack.control.set_duration(600)
    barrier = threading.Barrier(20)
    statuses: list[int] = []
    codes: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        barrier.wait()
        response = post_backup({"service": "contoso-apim"})
        with lock:
            statuses.append(response.status_code)
            if response.status_code != 202:
                codes.append(body_of(response)["error"]["code"])

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202] + [409] * 19
    assert set(codes) == {"OperationInProgress"}
    assert len(product.arm_requests("POST", "/backup")) == 1
    assert len(ledger_entities(product)) == 1


def test_timer_skips_a_busy_service(product: Product):
    product.stack.control.set_duration(600)
    assert post_backup({"service": "contoso-apim"}).status_code == 202
    function_app.scheduled_backup(TimerRequest())
    posts = product.arm_requests("POST", "/backup")
    assert [p["path"].split("/")[-2] for p in posts] == ["contoso-apim", "contoso-standby"]


def test_apim_failure_ends_failed_with_apims_message(product: Product):
    product.stack.control.fail_next_operation("contoso-apim", "BackupFailed", "Disk on fire")
    body = body_of(post_backup({"service": "contoso-apim"}))
    done = get_operation(body["operationId"])
    assert done.status_code == 200
    assert body_of(done)["status"] == "Failed"
    assert "Disk on fire" in body_of(done)["error"]["message"]
    row = ledger_entities(product)[0]
    assert row["Status"] == "Failed" and "Disk on fire" in row["Error"]
    # The lock is free again: the next backup starts.
    assert post_backup({"service": "contoso-apim"}).status_code == 202


def test_apim_refusing_the_start_is_recorded_and_reported(product: Product):
    # contoso-apim has no user-assigned identity with this client id: APIM refuses.
    product.reconfigure(
        BACKUP_ACCESS_TYPE="UserAssignedManagedIdentity",
        BACKUP_IDENTITY_CLIENT_ID="99999999-9999-9999-9999-999999999999",
    )
    response = post_backup({"service": "contoso-apim"})
    assert response.status_code == 502
    assert body_of(response)["error"]["code"] == "ApimRequestFailed"
    row = ledger_entities(product)[0]
    assert row["Status"] == "Failed" and row["Error"]
    assert post_backup({"service": "contoso-apim"}).status_code == 502  # lock released


def test_user_assigned_identity_and_access_key(product: Product):
    stack = product.stack
    product.reconfigure(
        APIM_SERVICES=stack.service_id("fabrikam-apim"),
        BACKUP_ACCESS_TYPE="UserAssignedManagedIdentity",
        BACKUP_IDENTITY_CLIENT_ID="11111111-2222-3333-4444-555555555555",
    )
    started = body_of(post_backup(None))
    assert body_of(get_operation(started["operationId"]))["status"] == "Succeeded"
    sent = product.arm_requests("POST", "/backup")[-1]["body"]
    assert sent["accessType"] == "UserAssignedManagedIdentity"
    assert sent["clientId"] == "11111111-2222-3333-4444-555555555555"

    product.reconfigure(
        APIM_SERVICES=stack.service_id("contoso-apim"),
        BACKUP_ACCESS_TYPE="AccessKey",
        BACKUP_STORAGE_KEY=stack.storage_key,
    )
    keyed = post_backup(None)
    assert stack.storage_key not in keyed.get_body().decode()
    assert body_of(get_operation(body_of(keyed)["operationId"]))["status"] == "Succeeded"
    assert product.arm_requests("POST", "/backup")[-1]["body"]["accessType"] == "AccessKey"


def test_wrong_access_key_fails_without_leaking_it(product: Product, caplog):
    wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="
    product.reconfigure(
        APIM_SERVICES=product.stack.service_id("contoso-apim"),
        BACKUP_ACCESS_TYPE="AccessKey",
        BACKUP_STORAGE_KEY=wrong,
    )
    response = post_backup(None)
    assert response.status_code == 502
    assert wrong not in response.get_body().decode()
    assert wrong not in caplog.text
    assert all(wrong not in json.dumps(e, default=str) for e in ledger_entities(product))


def test_operation_running_too_long_times_out(product: Product):
    product.stack.control.set_duration(10**6)
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    product.clock.now += timedelta(minutes=product.runtime.settings.operation_timeout_minutes + 1)
    settled = finish_running(product.runtime)
    assert [op.status for op in settled] == [Status.FAILED]
    assert settled[0].error and "Timed out" in settled[0].error
    row = product.runtime.ledger.get("contoso-apim", started.backup.backup_name)
    assert row is not None and row.status is Status.FAILED


def test_transient_poll_errors_leave_the_operation_running(product: Product):
    product.stack.control.set_duration(600)
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    product.stack.control.inject_fault(
        method="GET", path_contains="/operationresults/", status=500, times=10
    )
    assert finish_running(product.runtime) == []
    product.stack.control.clear_faults()
    product.stack.control.advance_clock(601)
    settled = finish_running(product.runtime)
    assert [op.operation_id for op in settled] == [started.operation.operation_id]
    assert settled[0].status is Status.SUCCEEDED


def test_abandoned_running_row_is_failed_by_housekeeping(product: Product):
    from shared.rules.model import BackupRecord

    record = BackupRecord(
        service="contoso-apim",
        backup_name="contoso-apim-20200101T000000Z.apimbackup",
        service_id=product.stack.service_id("contoso-apim"),
        storage_account="devstoreaccount1",
        container=product.runtime.settings.container,
        status=Status.RUNNING,
        trigger=Trigger.SCHEDULE,
        created_at=product.clock.now - timedelta(days=1),
        sku="Developer",
    )
    product.runtime.ledger.add(record)
    assert settle_stranded_rows(product.runtime) == [record.backup_name]
    row = product.runtime.ledger.get("contoso-apim", record.backup_name)
    assert row is not None and row.status is Status.FAILED and "Abandoned" in (row.error or "")


def test_listing_filters_and_hides_expired(product: Product):
    runtime = product.runtime
    first = start_backup(runtime, "contoso-apim", Trigger.CLI)
    finish_running(runtime)
    product.stack.control.fail_next_operation("contoso-standby", "BackupFailed", "nope")
    start_backup(runtime, "contoso-standby", Trigger.CLI)
    finish_running(runtime)
    product.clock.now += timedelta(days=31)
    fresh = start_backup(runtime, "contoso-apim", Trigger.CLI)
    finish_running(runtime)

    def names(**params: str) -> list[str]:
        response = function_app.list_backups(http("GET", "backups", params=params))
        assert response.status_code == 200
        return [item["backupName"] for item in body_of(response)["value"]]

    assert names() == [fresh.backup.backup_name]
    assert names(includeExpired="true")[0] == fresh.backup.backup_name
    assert len(names(includeExpired="true")) == 3
    assert names(service="contoso-apim", includeExpired="true") == [
        fresh.backup.backup_name,
        first.backup.backup_name,
    ]
    assert len(names(status="failed", includeExpired="true")) == 1
    assert names(status="Failed") == []
    bad = function_app.list_backups(http("GET", "backups", params={"status": "Bogus"}))
    assert bad.status_code == 400


def test_health_turns_503_without_a_recent_restorable_backup(product: Product):
    runtime = product.runtime
    response = function_app.health(http("GET", "health"))
    assert response.status_code == 200  # no backup yet, none late: pending
    assert {s["service"]: s["rpo"] for s in body_of(response)["services"]} == {
        "contoso-apim": "pending",
        "contoso-standby": "pending",
    }
    for name in ("contoso-apim", "contoso-standby"):
        start_backup(runtime, name, Trigger.CLI)
    finish_running(runtime)
    assert function_app.health(http("GET", "health")).status_code == 200
    product.clock.now += timedelta(hours=runtime.settings.rpo_hours + 1)
    late = function_app.health(http("GET", "health"))
    assert late.status_code == 503
    assert "older than" in body_of(late)["services"][0]["reason"]


def test_same_second_takes_the_next_free_name(product: Product):
    runtime = product.runtime
    product.clock.now = product.clock.now.replace(microsecond=0, tzinfo=UTC)
    first = start_backup(runtime, "contoso-apim", Trigger.CLI)
    finish_running(runtime)
    second = start_backup(runtime, "contoso-apim", Trigger.CLI)
    assert second.backup.created_at - first.backup.created_at == timedelta(seconds=1)
    assert second.backup.backup_name != first.backup.backup_name


def test_success_without_the_blob_is_failed(product: Product):
    """APIM says 200 but the blob is not there (deleted meanwhile, wrong account): Failed."""
    product.stack.control.set_duration(600)
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    product.stack.control.advance_clock(601)
    product.stack.control.operations()  # the emulator finishes the backup and writes its blob
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    container.delete_blob(started.backup.backup_name)

    done = body_of(get_operation(started.operation.operation_id))
    assert done["status"] == "Failed"
    assert "is not in container" in done["error"]["message"]
    row = product.runtime.ledger.get("contoso-apim", started.backup.backup_name)
    assert row is not None and row.status is Status.FAILED and row.size_bytes is None
    assert "is not in container" in (row.error or "")


def test_a_crash_between_operation_and_ledger_is_repaired(product: Product):
    """The operation row says Succeeded, the ledger row still Running (the process died
    between the two writes): housekeeping settles the ledger row from the operation."""
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    product.stack.control.operations()  # the emulator finishes and writes the blob
    product.runtime.operations.save(
        started.operation.with_changes(status=Status.SUCCEEDED, completed_at=product.clock.now)
    )
    stranded = product.runtime.ledger.get("contoso-apim", started.backup.backup_name)
    assert stranded is not None and stranded.status is Status.RUNNING
    assert settle_stranded_rows(product.runtime) == [started.backup.backup_name]
    row = product.runtime.ledger.get("contoso-apim", started.backup.backup_name)
    assert row is not None and row.status is Status.SUCCEEDED and (row.size_bytes or 0) > 0


def test_a_start_never_recorded_frees_the_service(product: Product):
    """A crash after the operation row but before its URL was saved: after the grace
    period the operation fails and the lock is free, instead of holding it for hours."""
    from shared.jobs.operations import LOCK_GRACE

    product.stack.control.set_duration(600)
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    recorded = product.runtime.operations.get(started.operation.operation_id)
    assert recorded is not None
    product.runtime.operations.save(recorded.with_changes(operation_url=""))
    assert finish_running(product.runtime) == []  # within the grace period: left alone
    product.clock.now += LOCK_GRACE + timedelta(seconds=1)
    settled = finish_running(product.runtime)
    assert [op.status for op in settled] == [Status.FAILED]
    assert "No operation URL" in (settled[0].error or "")
    assert product.runtime.operations.lock_holder("contoso-apim") is None


def test_no_free_name_in_a_minute_is_a_distinct_error(product: Product):
    from shared.jobs.backups import MAX_NAME_ATTEMPTS
    from shared.rules.model import BackupRecord
    from shared.rules.naming import backup_name

    product.clock.now = product.clock.now.replace(microsecond=0)
    for second in range(MAX_NAME_ATTEMPTS):
        moment = product.clock.now + timedelta(seconds=second)
        product.runtime.ledger.add(
            BackupRecord(
                service="contoso-apim",
                backup_name=backup_name("contoso-apim", moment),
                service_id=product.stack.service_id("contoso-apim"),
                storage_account="devstoreaccount1",
                container=product.runtime.settings.container,
                status=Status.FAILED,
                trigger=Trigger.CLI,
                created_at=moment,
                sku="Developer",
            )
        )
    response = post_backup({"service": "contoso-apim"})
    assert response.status_code == 503
    assert body_of(response)["error"]["code"] == "BackupNameUnavailable"
    assert product.arm_requests("POST") == []
    assert product.runtime.operations.lock_holder("contoso-apim") is None


@pytest.mark.parametrize("status", [401, 403, 404])
def test_an_auth_or_not_found_poll_does_not_fail_a_running_backup(product: Product, status: int):
    """One odd answer from Resource Manager must not mark a good backup Failed."""
    product.stack.control.set_duration(600)
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    product.stack.control.inject_fault(
        method="GET", path_contains="/operationresults/", status=status
    )
    assert finish_running(product.runtime) == []
    assert product.runtime.operations.lock_holder("contoso-apim") == started.operation.operation_id
    product.stack.control.advance_clock(601)
    assert [op.status for op in finish_running(product.runtime)] == [Status.SUCCEEDED]


def test_a_row_settled_before_its_url_is_noted_keeps_its_outcome(product: Product):
    from shared.jobs.backups import _record_url

    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    finish_running(product.runtime)  # settles the row: the etag in hand is now stale
    noted = _record_url(product.runtime, started.backup, "https://example/op")
    row = product.runtime.ledger.get("contoso-apim", started.backup.backup_name)
    assert row is not None and row.status is Status.SUCCEEDED
    assert row.operation_url == "https://example/op" == noted.operation_url


def test_a_malformed_backup_name_is_simply_not_found(product: Product):
    response = function_app.get_backup(http("GET", "x", route_params={"backupName": "../etc"}))
    assert response.status_code == 404
    assert body_of(response)["error"]["code"] == "BackupNotFound"
