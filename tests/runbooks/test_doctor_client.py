"""The client's ``doctor`` (runbooks/restore_apim.py): a deployed app's health, that it
refuses callers without credentials, and that its status URLs stay on its own host. Run
as its own process against the real handlers, and against stubs for what they never do."""

from __future__ import annotations

import pytest

from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.rules.model import Trigger
from tests.product import Product
from tests.runbook_client import RecordingHost, Seen, StubServer, run_client

OP = "0123456789abcdef0123456789abcdef"


def doctor(url: str, *args: str, **env: str):
    return run_client("doctor", *args, env={"APIM_BACKUP_URL": url, **env})


@pytest.mark.stack
def test_the_real_app_passes_with_an_earlier_operation(product: Product):
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    finish_running(product.runtime)
    with RecordingHost({}, host_key="the-host-key") as host:
        done = doctor(
            host.url, "--operation", started.operation.operation_id, APIM_BACKUP_KEY="the-host-key"
        )

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # contoso-standby has no backup yet but is not late (pending): the app is healthy.
    assert lines[0] == "OK health: GET /api/health answers 200 Healthy"
    assert lines[1] == "OK a call without a key or token: refused with 401"
    assert lines[2] == "OK status URL: on the function app's own host"
    assert host.credentials[1] == (None, None)  # the probe really sent nothing


def _answer(status_url: str = f"/api/operations/{OP}", open_to_all: bool = False):
    def respond(seen: Seen):
        authed = seen.headers.get("x-functions-key") == "k" or "authorization" in seen.headers
        if not authed and not open_to_all:
            return 401, {}, None
        if seen.path == "/api/health":
            return 200, {}, {"status": "Healthy", "services": []}
        return 200, {}, {"operationId": OP, "status": "Succeeded", "statusUrl": status_url}

    return respond


def test_an_app_open_to_anyone_fails():
    with StubServer(_answer(open_to_all=True)) as app:
        done = doctor(app.url, "--operation", OP, APIM_BACKUP_KEY="k")

    assert done.returncode == 1
    assert (
        "FAIL a call without a key or token: answered 200: anyone can call the API — the "
        "routes must be authLevel function" in done.stdout
    )
    assert "OK health: GET /api/health answers 200 Healthy" in done.stdout


def test_a_status_url_on_another_host_fails():
    with StubServer(_answer(status_url=f"https://evil.example/api/operations/{OP}")) as app:
        done = doctor(app.url, "--operation", OP, APIM_BACKUP_KEY="k")

    assert done.returncode == 1
    assert "FAIL status URL: Refusing the status URL on https://evil.example:443" in done.stdout


def test_entra_a_forged_principal_header_must_be_refused():
    def respond(seen: Seen):
        if "authorization" in seen.headers or "x-ms-client-principal" in seen.headers:
            return 200, {}, {"status": "Healthy"}
        return 401, {}, None

    with StubServer(respond) as app:
        done = doctor(app.url, APIM_BACKUP_AUTH="entra", APIM_BACKUP_TOKEN="t")

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[1] == "OK a call without a key or token: refused with 401"
    assert lines[2].startswith(
        "FAIL a forged principal header without a token: answered 200: anyone can call the "
        "API — the platform does not stand in front: set API_AUTH back to functionKey"
    )
    assert lines[3].startswith("WARN status URL: not checked: no operation to look at")
