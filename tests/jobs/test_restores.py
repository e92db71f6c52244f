"""Restores through the function handlers, against Azurite and the APIM emulator."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.jobs.restores import RestoreRequest, standby_sync, start_restore
from shared.rules.model import OperationKind, Status, Trigger
from tests.product import Product, body_of, get_operation, http

pytestmark = pytest.mark.stack


def post_restore(body: dict[str, Any] | bytes):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return function_app.start_restore(http("POST", "restores", raw))


def backed_up(product: Product, service: str = "contoso-apim") -> str:
    """A finished, Succeeded backup of ``service``; its name."""
    started = start_backup(product.runtime, service, Trigger.CLI)
    finish_running(product.runtime)
    record = product.runtime.ledger.get(service, started.backup.backup_name)
    assert record is not None and record.status is Status.SUCCEEDED
    return started.backup.backup_name


def captured_configuration(product: Product, backup_name: str) -> dict:
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    return json.loads(container.download_blob(backup_name).readall())["configuration"]


def scramble(product: Product, service: str) -> None:
    product.stack.control.patch_service(
        service, {"configuration": {"apis": [{"name": "rogue-change"}]}}
    )


@pytest.mark.parametrize("target", [None, "contoso-standby"])
def test_restore_ends_succeeded_and_the_target_holds_the_backup(
    product: Product, target: str | None
):
    name = backed_up(product)
    target_name = target or "contoso-apim"
    hostnames_before = product.stack.control.service(target_name)["properties"].get(
        "hostnameConfigurations"
    )
    scramble(product, target_name)
    product.stack.control.set_duration(1800)

    body: dict[str, Any] = {"backupName": name}
    if target:
        body["targetService"] = target
    response = post_restore(body)
    assert response.status_code == 202
    started = body_of(response)
    assert response.headers["Location"].endswith(f"/api/operations/{started['operationId']}")
    assert started["kind"] == "restore" and started["service"] == target_name
    assert get_operation(started["operationId"]).status_code == 202

    product.stack.control.advance_clock(1801)
    done = get_operation(started["operationId"])
    assert done.status_code == 200
    assert body_of(done)["status"] == "Succeeded"
    assert product.stack.control.service_config(target_name) == captured_configuration(
        product, name
    )
    hostnames_after = product.stack.control.service(target_name)["properties"].get(
        "hostnameConfigurations"
    )
    assert hostnames_after == hostnames_before


def refusal(product: Product, body: dict[str, Any] | bytes, status: int, code: str) -> str:
    product.stack.control.clear_requests()
    response = post_restore(body)
    assert response.status_code == status, response.get_body()
    error = body_of(response)["error"]
    assert error["code"] == code
    assert product.arm_requests("POST") == [], "nothing may reach APIM"
    return str(error["message"])


def test_malformed_requests_name_the_field(product: Product):
    assert "backupName" in refusal(product, {}, 400, "BadRequest")
    assert "backupName" in refusal(product, {"backupName": "../etc/passwd"}, 400, "BadRequest")
    assert "targetService" in refusal(
        product,
        {"backupName": "contoso-apim-20260101T000000Z.apimbackup", "targetService": 7},
        400,
        "BadRequest",
    )
    refusal(product, b"[1, 2]", 400, "BadRequest")
    refusal(product, b"not json", 400, "BadRequest")


def test_refusals_in_contract_order(product: Product):
    control = product.stack.control
    refusal(
        product, {"backupName": "contoso-apim-20200101T000000Z.apimbackup"}, 404, "BackupNotFound"
    )

    control.fail_next_operation("contoso-apim", "BackupFailed", "broken")
    failed = start_backup(product.runtime, "contoso-apim", Trigger.CLI).backup.backup_name
    finish_running(product.runtime)
    refusal(product, {"backupName": failed}, 409, "BackupNotSucceeded")

    name = backed_up(product)
    refusal(product, {"backupName": name, "targetService": "v2-apim"}, 403, "TargetNotAllowed")

    product.reconfigure(
        RESTORE_TARGETS=",".join(
            product.stack.service_id(n)
            for n in ("contoso-apim", "contoso-standby", "fabrikam-standby", "v2-apim")
        )
    )
    refusal(product, {"backupName": name, "targetService": "v2-apim"}, 409, "UnsupportedSku")
    message = refusal(
        product, {"backupName": name, "targetService": "fabrikam-standby"}, 409, "SkuMismatch"
    )
    assert "Premium" in message and "Developer" in message

    control.patch_service(
        "contoso-standby",
        {"workspaceLinks": [{"name": "w1", "workspaceId": "w1", "gateways": ["gw1"]}]},
    )
    refusal(
        product,
        {"backupName": name, "targetService": "contoso-standby"},
        409,
        "WorkspaceGatewaysPresent",
    )

    from azure.storage.blob import CorsRule

    product.blob_service.set_service_properties(cors=[CorsRule(["https://x.example"], ["GET"])])
    refusal(product, {"backupName": name}, 409, "CorsEnabled")
    product.blob_service.set_service_properties(cors=[])

    control.set_duration(600)
    start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    refusal(product, {"backupName": name}, 409, "OperationInProgress")

    product.clock.now += timedelta(days=30, seconds=1)
    refusal(product, {"backupName": name}, 410, "BackupExpired")


def test_a_backup_whose_blob_vanished_is_refused(product: Product):
    name = backed_up(product)
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    container.delete_blob(name)
    refusal(product, {"backupName": name}, 409, "BackupBlobMissing")


def test_dry_run_reports_each_check_and_starts_nothing(product: Product):
    name = backed_up(product)
    product.stack.control.clear_requests()
    ok = post_restore({"backupName": name, "targetService": "contoso-standby", "dryRun": True})
    assert ok.status_code == 200
    report = body_of(ok)
    assert report["wouldStart"] is True
    assert {c["check"] for c in report["checks"]} >= {"backupExists", "skuMatches", "targetIdle"}
    assert all(c["result"] == "Passed" for c in report["checks"])

    product.reconfigure(
        RESTORE_TARGETS=f"{product.stack.service_id('contoso-apim')},{product.stack.service_id('fabrikam-standby')}"
    )
    bad = body_of(
        post_restore({"backupName": name, "targetService": "fabrikam-standby", "dryRun": True})
    )
    assert bad["wouldStart"] is False
    results = {c["check"]: c for c in bad["checks"]}
    assert results["skuMatches"]["result"] == "Failed"
    assert results["skuMatches"]["code"] == "SkuMismatch"
    assert results["backupNotExpired"]["result"] == "Passed"
    assert product.arm_requests("POST") == []
    assert list(product.runtime.operations.all()) != []  # only the backup's own operation
    assert all(op.kind is OperationKind.BACKUP for op in product.runtime.operations.all())


def test_restore_that_apim_fails_ends_failed_with_its_message(product: Product):
    name = backed_up(product)
    product.stack.control.fail_next_operation(
        "contoso-standby", "RestoreFailed", "Cannot restore: disk full"
    )
    started = body_of(post_restore({"backupName": name, "targetService": "contoso-standby"}))
    done = body_of(get_operation(started["operationId"]))
    assert done["status"] == "Failed"
    assert "Cannot restore: disk full" in done["error"]["message"]


def test_emulator_expiry_is_reported_as_apim_says_it(product: Product):
    """The ledger's clock and APIM's may disagree; APIM's own refusal still surfaces."""
    name = backed_up(product)
    product.stack.control.advance_clock(31 * 24 * 3600)
    operation = start_restore(product.runtime, RestoreRequest(name), Trigger.CLI)
    settled = finish_running(product.runtime)
    assert [op.operation_id for op in settled] == [operation.operation_id]
    assert settled[0].status is Status.FAILED
    assert "Cannot restore: backup expired" in (settled[0].error or "")


def test_standby_sync_restores_each_new_backup_once(product: Product):
    product.reconfigure(STANDBY_PAIRS="contoso-apim=>contoso-standby")
    runtime = product.runtime
    assert standby_sync(runtime) == []  # nothing to restore yet

    first = backed_up(product)
    function_app.standby_sync(TimerRequest())
    restores = product.arm_requests("POST", "/restore")
    assert len(restores) == 1 and restores[0]["body"]["backupName"] == first
    finish_running(runtime)
    assert product.stack.control.service_config("contoso-standby") == captured_configuration(
        product, first
    )

    assert standby_sync(runtime) == []  # the same backup is never restored twice
    product.clock.now += timedelta(hours=1)
    second = backed_up(product)
    again = standby_sync(runtime)
    assert [op.backup_name for op in again] == [second]
    assert again[0].trigger is Trigger.STANDBY
    assert len(product.arm_requests("POST", "/restore")) == 2


def test_standby_sync_does_nothing_without_pairs(product: Product):
    backed_up(product)
    assert standby_sync(product.runtime) == []
    assert product.arm_requests("POST", "/restore") == []
