"""The runbook and pipeline client (runbooks/restore_apim.py), run as its own process
(Python 3.10 when there is one) against the real handlers over HTTP, on the local stack."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.rules.model import Status, Trigger
from tests.product import Product
from tests.runbook_client import RecordingHost, Seen, StubServer, easy_auth_host, run_client

pytestmark = pytest.mark.stack

RESTORE_KEY = "restore-function-key"
STATUS_KEY = "operations-function-key"
BACKUP_KEY = "backup-function-key"
KEYS = {"start_restore": RESTORE_KEY, "get_operation": STATUS_KEY, "start_backup": BACKUP_KEY}


@pytest.fixture
def host(product: Product) -> Iterator[RecordingHost]:
    with RecordingHost(KEYS, host_key="the-host-key") as served:
        yield served


def run_runbook(
    host: RecordingHost, *args: str, restore_key: str = RESTORE_KEY, status_key: str = STATUS_KEY
):
    """The Automation runbook's way in: positional parameters, variables."""
    env = {
        "ApimBackupFunctionUrl": host.url,
        "ApimBackupRestoreKey": restore_key,
        "ApimBackupStatusKey": status_key,
        "ApimBackupPollCapSeconds": "0.05",
    }
    return run_client(*args, env=env)


def run_cli(host_url: str, *args: str, key: str = BACKUP_KEY, **env: str):
    """A pipeline's way in: a subcommand, settings from the environment."""
    base = {
        "APIM_BACKUP_URL": host_url,
        "APIM_BACKUP_KEY": key,
        "APIM_BACKUP_STATUS_KEY": STATUS_KEY,
    }
    return run_client(*args, "--poll-cap", "0.05", env={**base, **env})


def backed_up(product: Product) -> str:
    name = start_backup(product.runtime, "contoso-apim", Trigger.CLI).backup.backup_name
    finish_running(product.runtime)
    return name


# -- the runbook (restores) ---------------------------------------------------------------


def test_successful_restore_exits_zero(product: Product, host: RecordingHost):
    name = backed_up(product)
    # One real second: the runbook sees the restore running, follows Retry-After, then done.
    product.stack.control.set_duration(1)
    result = run_runbook(host, name, "contoso-standby")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "still running" in result.stdout
    assert f"Restore of {name} into contoso-standby succeeded" in result.stdout
    # The app's drift (the seed's standby lacks the source's custom domain, among others).
    assert "setting(s) differ from the backup's manifest:" in result.stdout
    assert "  hostnameConfigurations[Proxy:api.contoso.example]: source" in result.stdout
    assert product.stack.control.service_config(
        "contoso-standby"
    ) == product.stack.control.service_config("contoso-apim")
    # It used the restore key for the start and the status key for the polls.
    assert ("POST", "/api/restores", 202) in host.calls
    assert all(status != 401 for _, _, status in host.calls)
    assert {key for key, _ in host.credentials} == {RESTORE_KEY, STATUS_KEY}


def test_transient_status_errors_are_asked_again(product: Product, host: RecordingHost):
    name = backed_up(product)
    host.unavailable = 2
    result = run_runbook(host, name, "contoso-standby")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("asking again") == 2
    assert sum(1 for _, _, status in host.calls if status == 503) == 2


def test_refused_restore_fails_the_job_with_the_reason(product: Product, host: RecordingHost):
    name = backed_up(product)
    result = run_runbook(host, name, "fabrikam-standby")
    assert result.returncode != 0
    assert "SkuMismatch" in result.stderr
    assert "Premium" in result.stderr
    assert "FAILED: Refused: SkuMismatch" in result.stdout
    assert product.arm_requests("POST", "/restore") == []


def test_failed_restore_fails_the_job(product: Product, host: RecordingHost):
    name = backed_up(product)
    product.stack.control.fail_next_operation(
        "contoso-standby", "RestoreFailed", "Cannot restore: boom"
    )
    result = run_runbook(host, name, "contoso-standby")
    assert result.returncode != 0
    assert "Cannot restore: boom" in result.stderr


def test_wrong_key_is_refused_by_the_host(product: Product, host: RecordingHost):
    name = backed_up(product)
    result = run_runbook(host, name, "contoso-standby", restore_key=BACKUP_KEY)
    assert result.returncode != 0
    assert "HTTP 401" in result.stderr
    assert product.arm_requests("POST", "/restore") == []


def test_dry_run_starts_nothing(product: Product, host: RecordingHost):
    name = backed_up(product)
    result = run_runbook(host, name, "-", "", "dryrun")
    assert result.returncode == 0, result.stderr
    assert "every check passed" in result.stdout
    assert product.arm_requests("POST", "/restore") == []


def test_dry_run_as_the_third_parameter_uses_the_url_variable(
    product: Product, host: RecordingHost
):
    name = backed_up(product)
    result = run_runbook(host, name, "contoso-standby", "dryrun")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every check passed" in result.stdout
    assert product.arm_requests("POST", "/restore") == []


def test_a_status_key_refused_says_the_restore_is_running(product: Product, host: RecordingHost):
    name = backed_up(product)
    result = run_runbook(host, name, "contoso-standby", status_key="not-the-operations-key")
    assert result.returncode != 0
    assert "The restore was started" in result.stdout
    assert "ApimBackupStatusKey" in result.stdout
    assert len(product.arm_requests("POST", "/restore")) == 1


# -- the pipeline client: backups and exit codes -----------------------------------------


def test_cli_backup_waits_for_success_and_prints_the_result(product: Product, host: RecordingHost):
    product.stack.control.set_duration(1)
    result = run_cli(host.url, "backup", "--service", "contoso-apim", "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    final = json.loads(result.stdout)
    assert final["status"] == "Succeeded"
    assert final["kind"] == "backup"
    assert "still running" in result.stderr
    row = product.runtime.ledger.get("contoso-apim", final["backupName"])
    assert row is not None and row.status is Status.SUCCEEDED and row.trigger is Trigger.HTTP
    assert {key for key, _ in host.credentials} == {BACKUP_KEY, STATUS_KEY}


def test_cli_backup_without_wait_prints_the_started_operation(
    product: Product, host: RecordingHost
):
    product.stack.control.set_duration(600)
    result = run_cli(host.url, "backup", "--service", "contoso-apim")
    assert result.returncode == 0, result.stderr
    started = json.loads(result.stdout)
    assert started["status"] == "Running"
    assert started["statusUrl"] == f"{host.url}/api/operations/{started['operationId']}"
    assert [c for c in host.calls if c[1].startswith("/api/operations")] == []
    # The status subcommand follows it later, e.g. in a second pipeline step.
    result = run_cli(host.url, "status", started["operationId"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "Running"


def test_cli_exit_1_when_the_backup_fails(product: Product, host: RecordingHost):
    product.stack.control.fail_next_operation("contoso-apim", "BackupFailed", "disk on fire")
    result = run_cli(host.url, "backup", "--service", "contoso-apim", "--wait")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "disk on fire" in result.stderr
    assert result.stdout == ""


def test_cli_exit_3_when_the_start_is_refused(product: Product, host: RecordingHost):
    result = run_cli(host.url, "backup", "--service", "no-such-apim", "--wait")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ServiceNotConfigured" in result.stderr
    assert product.arm_requests("POST", "/backup") == []


def test_cli_exit_2_without_a_key_sends_nothing(product: Product, host: RecordingHost):
    result = run_cli(host.url, "backup", "--service", "contoso-apim", key="")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "APIM_BACKUP_KEY" in result.stderr
    assert host.calls == []


def test_cli_exit_4_when_the_status_cannot_be_followed(product: Product, host: RecordingHost):
    product.stack.control.set_duration(600)
    result = run_cli(
        host.url,
        "backup",
        "--service",
        "contoso-apim",
        "--wait",
        APIM_BACKUP_STATUS_KEY="wrong-status-key",
    )
    assert result.returncode == 4, result.stdout + result.stderr
    assert "was started" in result.stderr
    assert "APIM_BACKUP_STATUS_KEY" in result.stderr
    assert len(product.arm_requests("POST", "/backup")) == 1


def test_cli_exit_4_when_the_app_cannot_be_reached():
    with StubServer() as stub:
        url = stub.url  # a port that was just free, and is closed again below
    result = run_cli(url, "backup", "--service", "contoso-apim", "--wait")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "could not be reached" in result.stderr


def test_cli_restore_with_dry_run_and_then_for_real(product: Product, host: RecordingHost):
    name = backed_up(product)
    dry = run_cli(
        host.url, "restore", "--backup", name, "--target", "fabrikam-standby", "--dry-run",
        key=RESTORE_KEY,
    )  # fmt: skip
    assert dry.returncode == 3, dry.stdout + dry.stderr
    assert "SkuMismatch" in dry.stderr
    result = run_cli(
        host.url, "restore", "--backup", name, "--target", "contoso-standby", "--wait",
        key=RESTORE_KEY,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    final = json.loads(result.stdout)
    assert (final["kind"], final["status"], final["service"]) == (
        "restore",
        "Succeeded",
        "contoso-standby",
    )
    assert len(product.arm_requests("POST", "/restore")) == 1
    assert any(item["setting"].startswith("hostnameConfigurations") for item in final["drift"])
    assert "differ from the backup's manifest" in result.stderr


# -- Entra ID: a token from the managed identity instead of a key -------------------------

APP_ID_URI = "api://apim-backup-test"
IDENTITY_SECRET = "the-identity-header-secret"  # what Automation puts in IDENTITY_HEADER
TOKEN = "token-from-the-managed-identity"


def identity_endpoint(seen: Seen) -> tuple[int, dict[str, str], object]:
    """A stand-in for Automation's managed identity endpoint (api-version 2019-08-01)."""
    if seen.headers.get("x-identity-header") != IDENTITY_SECRET:
        return 401, {}, {"error": "invalid_request", "error_description": "bad identity header"}
    if seen.query.get("api-version") != "2019-08-01" or seen.query.get("resource") != APP_ID_URI:
        return 400, {}, {"error": "invalid_resource", "error_description": "unexpected query"}
    expires = str(int(time.time()) + 3600)
    body = {"access_token": TOKEN, "expires_on": expires, "resource": APP_ID_URI}
    return 200, {}, {**body, "token_type": "Bearer"}


@pytest.fixture
def entra_host(product: Product) -> Iterator[RecordingHost]:
    # Easy Auth in front of the app: only the expected bearer token gets through.
    with easy_auth_host(TOKEN) as served:
        yield served


def run_entra_runbook(host: RecordingHost, identity: StubServer, *args: str, secret: str):
    env = {
        "ApimBackupFunctionUrl": host.url,
        "ApimBackupAuth": "entra",
        "ApimBackupAppIdUri": APP_ID_URI,
        "ApimBackupPollCapSeconds": "0.05",
        "IDENTITY_ENDPOINT": f"{identity.url}/msi/token",
        "IDENTITY_HEADER": secret,
    }
    return run_client(*args, env=env)


def test_runbook_restores_with_a_managed_identity_token(
    product: Product, entra_host: RecordingHost
):
    name = backed_up(product)
    product.stack.control.set_duration(1)
    with StubServer(identity_endpoint) as identity:
        result = run_entra_runbook(
            entra_host, identity, name, "contoso-standby", secret=IDENTITY_SECRET
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Restore of {name} into contoso-standby succeeded" in result.stdout
    # One token, asked for with the identity header, the app's URI and the api-version.
    assert len(identity.seen) == 1
    asked = identity.seen[0]
    assert asked.path == "/msi/token"
    assert asked.query == {"resource": APP_ID_URI, "api-version": "2019-08-01"}
    # Every call to the app carried the bearer token and no function key.
    assert entra_host.credentials
    assert set(entra_host.credentials) == {(None, f"Bearer {TOKEN}")}
    assert all(status != 401 for _, _, status in entra_host.calls)
    assert TOKEN not in result.stdout + result.stderr
    assert len(product.arm_requests("POST", "/restore")) == 1


def test_runbook_without_a_token_sends_nothing_to_the_app(
    product: Product, entra_host: RecordingHost
):
    name = backed_up(product)
    with StubServer(identity_endpoint) as identity:
        result = run_entra_runbook(
            entra_host, identity, name, "contoso-standby", secret="not-the-identity-secret"
        )
    assert result.returncode != 0
    assert "managed identity endpoint gave no token" in result.stdout
    assert "HTTP 401" in result.stdout
    assert "not-the-identity-secret" not in result.stdout + result.stderr
    assert entra_host.calls == []
    assert product.arm_requests("POST", "/restore") == []


def test_the_entra_host_refuses_a_function_key(product: Product, entra_host: RecordingHost):
    # The stand-in really checks the bearer: a key that opens the keyed host does not.
    name = backed_up(product)
    result = run_runbook(entra_host, name, "contoso-standby", restore_key=entra_host.host_key)
    assert result.returncode != 0
    assert "HTTP 401" in result.stderr
    assert product.arm_requests("POST", "/restore") == []
