"""API_AUTH=entra over real HTTP: App Service authentication in front (tests/funchost.py
stands in for it), the app's own principal and role checks behind it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.rules.model import Trigger
from tests.funchost import FunctionHost, client_principal, http_routes
from tests.product import Product

pytestmark = pytest.mark.stack

READER = "token-of-a-pipeline"  # any authenticated caller, no app role
RESTORER = "token-of-the-runbook"  # holds ApimBackup.Restore


@pytest.fixture
def entra(product: Product) -> Product:
    # WEBSITE_AUTH_ENABLED is what App Service injects when its authentication is on.
    product.reconfigure(API_AUTH="entra", WEBSITE_AUTH_ENABLED="true")
    return product


@pytest.fixture
def host(entra: Product) -> Iterator[FunctionHost]:
    tokens = {READER: [], RESTORER: ["ApimBackup.Restore"]}
    with FunctionHost({}, host_key="unused", easy_auth=tokens) as served:
        yield served


def call(
    host: FunctionHost,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{host.url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else {}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def backed_up(product: Product) -> str:
    name = start_backup(product.runtime, "contoso-apim", Trigger.CLI).backup.backup_name
    finish_running(product.runtime)
    return name


def test_without_a_token_the_platform_refuses_and_no_function_runs(
    entra: Product, host: FunctionHost
):
    for method, path in (
        ("GET", "/api/backups"),
        ("POST", "/api/restores"),
        ("GET", "/api/health"),
    ):
        status, _ = call(host, method, path, {} if method == "POST" else None)
        assert status == 401
    # A caller cannot bring its own principal header: it is removed, the token is missing.
    forged = {"X-MS-CLIENT-PRINCIPAL": client_principal(["ApimBackup.Restore"])}
    status, _ = call(host, "POST", "/api/restores", {"backupName": "x"}, forged)
    assert status == 401
    assert entra.arm_requests("POST") == []


def test_any_authenticated_caller_may_read_and_back_up(entra: Product, host: FunctionHost):
    status, body = call(host, "GET", "/api/backups", headers=bearer(READER))
    assert status == 200 and body == {"value": []}
    status, body = call(host, "POST", "/api/backups", {"service": "contoso-apim"}, bearer(READER))
    assert status == 202, body
    assert body["service"] == "contoso-apim"


def test_a_restore_needs_the_restore_role(entra: Product, host: FunctionHost):
    name = backed_up(entra)
    request = {"backupName": name, "targetService": "contoso-standby"}

    status, body = call(host, "POST", "/api/restores", request, bearer(READER))

    assert status == 403
    assert body["error"]["code"] == "RestoreRoleRequired"
    assert "ApimBackup.Restore" in body["error"]["message"]
    assert entra.arm_requests("POST", "/restore") == []  # nothing reached APIM

    status, body = call(host, "POST", "/api/restores", request, bearer(RESTORER))

    assert status == 202, body
    assert len(entra.arm_requests("POST", "/restore")) == 1


def _request(route_pattern: str, method: str) -> func.HttpRequest:
    path = route_pattern.removeprefix("^").removesuffix("$")
    path = path.replace("(?P<backupName>[^/]+)", "contoso-apim-20260101T020000Z.apimbackup")
    path = path.replace("(?P<operationId>[^/]+)", "00000000-0000-0000-0000-000000000000")
    return func.HttpRequest(method, f"https://backup.example.net{path}", body=b"{}")


def test_every_route_refuses_a_request_that_did_not_pass_the_platform(entra: Product):
    # Called directly, without X-MS-CLIENT-PRINCIPAL: each route must check the caller
    # itself (an anonymous route that forgot would answer 200 or 4xx of its own).
    routes = http_routes()
    assert len(routes) >= 7
    for route in routes:
        for method in route.methods:
            response = route.handler(_request(route.pattern.pattern, method))
            body = json.loads(response.get_body())
            assert response.status_code == 401, (route.name, method, body)
            assert body["error"]["code"] == "Unauthenticated"
    assert entra.arm_requests() == []
