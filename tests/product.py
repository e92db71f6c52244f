"""The product wired to the local stack: real Azurite tables and blobs, the emulator for APIM.

Each test gets its own ledger table, operations table and container, so tests never see
each other's rows, and the process-wide Runtime that function_app's handlers use.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import azure.functions as func
import pytest
from azure.storage.blob import BlobServiceClient

from devstack.stack import LocalStack
from shared.runtime import Runtime, set_runtime, utc_now
from shared.settings import Settings
from shared.signals import LOGGER_NAME


class Clock:
    """A clock the test can move; starts at the real now."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now


class Product:
    def __init__(self, stack: LocalStack, env: dict[str, str], clock: Clock) -> None:
        self.stack = stack
        self.env = env
        self.clock = clock
        self.runtime = Runtime(Settings.from_env(env), clock=clock)

    def reconfigure(self, **overrides: str) -> Runtime:
        """A new Runtime with some settings changed (same tables and container)."""
        self.env = {**self.env, **overrides}
        self.runtime = Runtime(Settings.from_env(self.env), clock=self.clock)
        set_runtime(self.runtime)
        return self.runtime

    @property
    def blob_service(self) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(self.stack.connection_string)

    def arm_requests(self, method: str | None = None, contains: str = "") -> list[dict[str, Any]]:
        return [
            r
            for r in self.stack.control.requests()
            if (method is None or r["method"] == method) and contains in str(r["path"])
        ]


@pytest.fixture
def product(emulator: LocalStack) -> Iterator[Product]:
    suffix = uuid.uuid4().hex[:10]
    env = {
        **emulator.product_env(),
        "APIM_SERVICES": ",".join(
            emulator.service_id(n) for n in ("contoso-apim", "contoso-standby")
        ),
        "LEDGER_TABLE": f"ledger{suffix}",
        "OPERATIONS_TABLE": f"ops{suffix}",
        "BACKUP_CONTAINER": f"backups-{suffix}",
    }
    env.pop("REQUESTS_CA_BUNDLE", None)  # the session fixture sets it for the process
    clock = Clock()
    made = Product(emulator, env, clock)
    set_runtime(made.runtime)
    service = made.blob_service
    try:
        yield made
    finally:
        set_runtime(None)
        service.set_service_properties(cors=[])  # a test may have turned CORS on


def http(
    method: str,
    path: str,
    body: bytes = b"",
    params: dict[str, str] | None = None,
    route_params: dict[str, str] | None = None,
) -> func.HttpRequest:
    return func.HttpRequest(
        method,
        f"https://backup.example.net/api/{path}",
        headers={"Content-Type": "application/json"},
        params=params or {},
        route_params=route_params or {},
        body=body,
    )


Handler = Callable[[func.HttpRequest], func.HttpResponse]


def body_of(response: func.HttpResponse) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response.get_body())
    return body


def get_operation(operation_id: str) -> func.HttpResponse:
    """GET /api/operations/{id} through its handler."""
    import function_app

    request = http("GET", f"operations/{operation_id}", route_params={"operationId": operation_id})
    return function_app.get_operation(request)


def signals(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    """The fields of each signal ``name`` logged so far (docs/timers-and-signals.md)."""
    return [
        json.loads(r.getMessage().split(" ", 2)[2])
        for r in caplog.records
        if r.name == LOGGER_NAME and r.getMessage().startswith(f"SIGNAL {name} ")
    ]
