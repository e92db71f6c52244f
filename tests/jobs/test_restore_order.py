"""When several restore checks would fail at once, the earliest in the contract answers,
and no refusal changes any table or reaches APIM."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from azure.storage.blob import CorsRule

import function_app
from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.rules.model import Status, Trigger
from tests.product import Product, body_of, http

pytestmark = pytest.mark.stack

GATEWAYS = {"workspaceLinks": [{"name": "w1", "workspaceId": "w1", "gateways": ["gw1"]}]}


def snapshot(product: Product) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for table in (product.runtime.ledger.table, product.runtime.operations.table):
        rows += [
            (e["PartitionKey"], e["RowKey"], str(e.metadata["etag"])) for e in table.list_entities()
        ]
    return sorted(rows)


def answer(product: Product, body: dict[str, Any]) -> str:
    before = snapshot(product)
    product.stack.control.clear_requests()
    response = function_app.start_restore(http("POST", "restores", json.dumps(body).encode()))
    assert response.status_code >= 400
    assert product.arm_requests("POST") == []
    assert snapshot(product) == before, "a refused restore changed a table"
    return str(body_of(response)["error"]["code"])


@pytest.fixture
def backup(product: Product) -> str:
    product.reconfigure(
        RESTORE_TARGETS=",".join(
            product.stack.service_id(n)
            for n in ("contoso-apim", "contoso-standby", "fabrikam-standby")
        )
    )
    name = start_backup(product.runtime, "contoso-apim", Trigger.CLI).backup.backup_name
    finish_running(product.runtime)
    return name


def test_not_succeeded_comes_before_expired(product: Product, backup: str):
    product.stack.control.fail_next_operation("contoso-apim", "BackupFailed", "no")
    failed = start_backup(product.runtime, "contoso-apim", Trigger.CLI).backup.backup_name
    finish_running(product.runtime)
    product.clock.now += timedelta(days=31)
    assert answer(product, {"backupName": failed}) == "BackupNotSucceeded"
    assert answer(product, {"backupName": backup}) == "BackupExpired"


def test_expired_comes_before_target_not_allowed(product: Product, backup: str):
    product.clock.now += timedelta(days=31)
    assert answer(product, {"backupName": backup, "targetService": "v2-apim"}) == "BackupExpired"


def test_sku_mismatch_comes_before_gateways(product: Product, backup: str):
    product.stack.control.patch_service("fabrikam-standby", GATEWAYS)
    assert (
        answer(product, {"backupName": backup, "targetService": "fabrikam-standby"})
        == "SkuMismatch"
    )


def test_gateways_come_before_cors_which_comes_before_the_blob(product: Product, backup: str):
    product.stack.control.patch_service("contoso-standby", GATEWAYS)
    product.blob_service.set_service_properties(cors=[CorsRule(["https://x.example"], ["GET"])])
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    container.delete_blob(backup)
    target = {"backupName": backup, "targetService": "contoso-standby"}
    assert answer(product, target) == "WorkspaceGatewaysPresent"
    assert answer(product, {"backupName": backup}) == "CorsEnabled"
    product.blob_service.set_service_properties(cors=[])
    assert answer(product, {"backupName": backup}) == "BackupBlobMissing"


def test_blob_missing_comes_before_operation_in_progress(product: Product, backup: str):
    product.stack.control.set_duration(600)
    start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    container.delete_blob(backup)
    assert answer(product, {"backupName": backup}) == "BackupBlobMissing"


def test_dry_run_skips_what_depends_on_a_failed_check(product: Product, backup: str):
    response = function_app.start_restore(
        http(
            "POST",
            "restores",
            json.dumps(
                {"backupName": "contoso-apim-20200101T000000Z.apimbackup", "dryRun": True}
            ).encode(),
        )
    )
    results = {c["check"]: c["result"] for c in body_of(response)["checks"]}
    assert results["backupExists"] == "Failed"
    assert results["backupSucceeded"] == results["blobExists"] == results["skuMatches"] == "Skipped"
    assert results["noCors"] == "Passed"
    assert product.runtime.ledger.get("contoso-apim", backup).status is Status.SUCCEEDED  # type: ignore[union-attr]


def test_apim_busy_at_start_leaves_nothing_behind(product: Product):
    """APIM answers 409 to the start (an operation someone else began): our rows go."""
    product.stack.control.inject_fault(method="POST", path_contains="/backup", status=409)
    response = function_app.start_backup(http("POST", "backups", b'{"service": "contoso-apim"}'))
    assert response.status_code == 409
    assert body_of(response)["error"]["code"] == "OperationInProgress"
    assert snapshot(product) == []
    assert product.runtime.operations.lock_holder("contoso-apim") is None


def test_a_service_already_updating_is_refused(product: Product):
    """Another tool's operation makes the service Updating: refused before APIM's 409."""
    product.stack.control.set_duration(600)
    start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    # Forget our own lock, as if the running operation were someone else's.
    product.runtime.operations.table.delete_entity("lock", "contoso-apim")
    product.stack.control.clear_requests()
    response = function_app.start_backup(http("POST", "backups", b'{"service": "contoso-apim"}'))
    assert response.status_code == 409
    assert "Updating" in body_of(response)["error"]["message"]
    assert product.arm_requests("POST") == []
