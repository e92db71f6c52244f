"""Storage down during an incident: every route answers 503 DependencyUnavailable naming
storage (never a 500), and nothing reaches Resource Manager's write endpoints."""

from __future__ import annotations

import json
import re
import time

import azure.functions as func
import pytest

import function_app
from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.rules.model import Trigger
from tests.product import Product, body_of, http

pytestmark = pytest.mark.stack

CLOSED = "127.0.0.1:1"  # nothing listens on port 1: connections are refused at once


def storage_down(product: Product, *, blobs_too: bool) -> None:
    """Point the product's table (and blob) endpoint at a closed port."""
    conn = product.env["BACKUP_STORAGE"]
    endpoints = ("TableEndpoint", "BlobEndpoint") if blobs_too else ("TableEndpoint",)
    for name in endpoints:
        conn = re.sub(rf"{name}=http://[^/;]+", f"{name}=http://{CLOSED}", conn)
    assert conn != product.env["BACKUP_STORAGE"]
    product.reconfigure(BACKUP_STORAGE=conn)


def assert_storage_unavailable(response: func.HttpResponse) -> None:
    assert response.status_code == 503, response.get_body()
    assert response.headers["Retry-After"] == "30"
    assert body_of(response) == {
        "error": {
            "code": "DependencyUnavailable",
            "message": "storage cannot be reached: ServiceRequestError",
            "target": "storage",
        }
    }


def test_health_names_storage_when_it_cannot_be_reached(product: Product, caplog):
    healthy = function_app.health(http("GET", "health"))
    assert healthy.status_code == 200 and "services" in body_of(healthy)  # pending: no backup yet

    storage_down(product, blobs_too=True)
    started = time.monotonic()
    response = function_app.health(http("GET", "health"))
    assert time.monotonic() - started < 5
    assert_storage_unavailable(response)
    # The log names the dependency and the failure's type, never the connection string.
    assert "storage cannot be reached: ServiceRequestError" in caplog.text
    assert "AccountKey" not in caplog.text and "Eby8vdM02x" not in caplog.text


def test_every_route_answers_503_storage_and_starts_nothing(product: Product):
    runtime = product.runtime
    done = start_backup(runtime, "contoso-apim", Trigger.CLI)
    finish_running(runtime)
    name, operation_id = done.backup.backup_name, done.operation.operation_id
    product.stack.control.clear_requests()

    # Tables only: the blob client's own retries (15 s backoff) would make a blob
    # outage cost this test minutes; the table is what every route reads first.
    storage_down(product, blobs_too=False)
    restore = {"backupName": name, "targetService": "contoso-standby"}
    calls = [
        (function_app.list_backups, http("GET", "backups")),
        (function_app.list_backups, http("GET", "backups", params={"service": "contoso-apim"})),
        (
            function_app.get_backup,
            http("GET", f"backups/{name}", route_params={"backupName": name}),
        ),
        (
            function_app.get_operation,
            http("GET", f"operations/{operation_id}", route_params={"operationId": operation_id}),
        ),
        (function_app.start_backup, http("POST", "backups", b'{"service": "contoso-apim"}')),
        (function_app.start_restore, http("POST", "restores", json.dumps(restore).encode())),
        (
            function_app.start_restore,
            http("POST", "restores", json.dumps({**restore, "dryRun": True}).encode()),
        ),
        (function_app.prune, http("POST", "prune", params={"dryRun": "true"})),
        (function_app.prune, http("POST", "prune")),
        (function_app.health, http("GET", "health")),
    ]
    for handler, request in calls:
        assert_storage_unavailable(handler(request))
    # A 503 started nothing: no backup or restore reached Resource Manager.
    assert product.arm_requests("POST") == []


def table_rows(product: Product) -> list[tuple[str, str, str | None]]:
    runtime = product.runtime
    return sorted(
        (e["PartitionKey"], e["RowKey"], e.metadata["etag"])
        for table in (runtime.ledger.table, runtime.operations.table)
        for e in table.list_entities()
    )


def test_resource_manager_down_refuses_starts_cleanly_and_health_is_unaffected(
    product: Product,
):
    product.stack.control.set_duration(3600)
    running = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    operation_id = running.operation.operation_id
    before = table_rows(product)
    # Every request to Resource Manager has its connection dropped.
    product.stack.control.inject_fault(action="drop", times=1000)
    try:
        started = time.monotonic()
        refused = function_app.start_backup(
            http("POST", "backups", b'{"service": "contoso-standby"}')
        )
        elapsed = time.monotonic() - started
        status = function_app.get_operation(
            http("GET", f"operations/{operation_id}", route_params={"operationId": operation_id})
        )
        health = function_app.health(http("GET", "health"))
    finally:
        product.stack.control.clear_faults()

    # A start is refused before anything is written (the pre-checks read the service
    # first), after the ARM client's few retries.
    assert refused.status_code == 502, refused.get_body()
    error = body_of(refused)["error"]
    assert error["code"] == "ApimRequestFailed"
    assert error["message"].startswith("Resource Manager is unreachable: Service")
    assert elapsed < 30
    # A running operation's status stays 202: the next poll is the retry.
    assert status.status_code == 202 and body_of(status)["status"] == "Running"
    # Health reads storage only: it answers (no backup has finished yet, and the first
    # is not late: pending, which is healthy).
    assert health.status_code == 200 and body_of(health)["status"] == "Healthy"
    assert {s["rpo"] for s in body_of(health)["services"]} == {"pending"}
    assert table_rows(product) == before
