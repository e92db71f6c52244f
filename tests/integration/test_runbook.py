"""The Automation runbook, run as its own process against the real handlers over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.backups import start_backup
from shared.model import Trigger
from shared.operations import finish_running
from tests.funchost import FunctionHost
from tests.integration.conftest import Product

pytestmark = pytest.mark.stack

RUNBOOK = Path(__file__).resolve().parents[2] / "runbooks" / "restore_apim.py"
RESTORE_KEY = "restore-function-key"
STATUS_KEY = "operations-function-key"


@pytest.fixture
def host(product: Product) -> Iterator[FunctionHost]:
    keys = {"start_restore": RESTORE_KEY, "get_operation": STATUS_KEY, "start_backup": "backup-key"}
    with FunctionHost(keys, host_key="the-host-key") as served:
        yield served


def run_runbook(
    host: FunctionHost, *args: str, restore_key: str = RESTORE_KEY, status_key: str = STATUS_KEY
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "ApimBackupFunctionUrl": host.url,
        "ApimBackupRestoreKey": restore_key,
        "ApimBackupStatusKey": status_key,
        "ApimBackupPollCapSeconds": "0.05",
    }
    return subprocess.run(
        [sys.executable, str(RUNBOOK), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def backed_up(product: Product) -> str:
    name = start_backup(product.runtime, "contoso-apim", Trigger.CLI).backup.backup_name
    finish_running(product.runtime)
    return name


def test_successful_restore_exits_zero(product: Product, host: FunctionHost):
    name = backed_up(product)
    # One real second: the runbook sees the restore running, follows Retry-After, then done.
    product.stack.control.set_duration(1)
    result = run_runbook(host, name, "contoso-standby")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "still running" in result.stdout
    assert f"Restore of {name} into contoso-standby succeeded" in result.stdout
    assert product.stack.control.service_config(
        "contoso-standby"
    ) == product.stack.control.service_config("contoso-apim")
    # It used the restore key for the start and the status key for the polls.
    assert ("POST", "/api/restores", 202) in host.calls
    assert all(status != 401 for _, _, status in host.calls)


def test_transient_status_errors_are_asked_again(product: Product, host: FunctionHost):
    name = backed_up(product)
    host.unavailable = 2
    result = run_runbook(host, name, "contoso-standby")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("asking again") == 2
    assert sum(1 for _, _, status in host.calls if status == 503) == 2


def test_refused_restore_fails_the_job_with_the_reason(product: Product, host: FunctionHost):
    name = backed_up(product)
    result = run_runbook(host, name, "fabrikam-standby")
    assert result.returncode != 0
    assert "SkuMismatch" in result.stderr
    assert "Premium" in result.stderr
    assert product.arm_requests("POST", "/restore") == []


def test_failed_restore_fails_the_job(product: Product, host: FunctionHost):
    name = backed_up(product)
    product.stack.control.fail_next_operation(
        "contoso-standby", "RestoreFailed", "Cannot restore: boom"
    )
    result = run_runbook(host, name, "contoso-standby")
    assert result.returncode != 0
    assert "Cannot restore: boom" in result.stderr


def test_wrong_key_is_refused_by_the_host(product: Product, host: FunctionHost):
    name = backed_up(product)
    result = run_runbook(host, name, "contoso-standby", restore_key="backup-key")
    assert result.returncode != 0
    assert "HTTP 401" in result.stderr
    assert product.arm_requests("POST", "/restore") == []


def test_dry_run_starts_nothing(product: Product, host: FunctionHost):
    name = backed_up(product)
    result = run_runbook(host, name, "-", "", "dryrun")
    assert result.returncode == 0, result.stderr
    assert "every check passed" in result.stdout
    assert product.arm_requests("POST", "/restore") == []


def test_a_status_key_refused_says_the_restore_is_running(product: Product, host: FunctionHost):
    name = backed_up(product)
    result = run_runbook(host, name, "contoso-standby", status_key="not-the-operations-key")
    assert result.returncode != 0
    assert "The restore was started" in result.stdout
    assert "ApimBackupStatusKey" in result.stdout
    assert len(product.arm_requests("POST", "/restore")) == 1
