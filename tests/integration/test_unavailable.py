"""Storage down during an incident: every route answers 503 DependencyUnavailable naming
storage (never a 500), and nothing reaches Resource Manager's write endpoints."""

from __future__ import annotations

import json
import re
import time

import azure.functions as func
import pytest

import function_app
from shared.backups import start_backup
from shared.model import Trigger
from shared.operations import finish_running
from tests.integration.conftest import Product, body_of, http

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
    assert healthy.status_code == 503 and "services" in body_of(healthy)  # no backup yet

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
