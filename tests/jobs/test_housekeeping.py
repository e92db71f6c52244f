"""Housekeeping, POST /api/prune and the operator CLI, against Azurite and the emulator."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.__main__ import main as cli
from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.jobs.restores import RestoreRequest, start_restore
from shared.rules.model import Status, Trigger
from tests.product import Product, http

pytestmark = pytest.mark.stack


def backed_up(product: Product, service: str = "contoso-apim") -> str:
    name = start_backup(product.runtime, service, Trigger.CLI).backup.backup_name
    finish_running(product.runtime)
    return name


def blob_names(product: Product) -> set[str]:
    """The backup blobs (each backup's settings manifest is tested in test_manifest.py)."""
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    return {n for n in container.list_blob_names() if not n.endswith(".manifest.json")}


def test_prune_route_dry_run_then_real(product: Product):
    old = backed_up(product)
    product.clock.now += timedelta(days=31)
    fresh = backed_up(product)

    dry = function_app.prune(http("POST", "prune", params={"dryRun": "true"}))
    assert dry.status_code == 200
    report = json.loads(dry.get_body())
    assert report["dryRun"] is True
    assert [p["backupName"] for p in report["pruned"]] == [old]
    assert "expired" in report["pruned"][0]["reason"]
    assert fresh in [k["backupName"] for k in report["kept"]]
    assert blob_names(product) == {old, fresh}  # the dry run changed nothing
    assert product.runtime.ledger.get("contoso-apim", old).status is Status.SUCCEEDED  # type: ignore[union-attr]

    real = json.loads(function_app.prune(http("POST", "prune")).get_body())
    assert real["dryRun"] is False and [p["backupName"] for p in real["pruned"]] == [old]
    assert blob_names(product) == {fresh}
    row = product.runtime.ledger.get("contoso-apim", old)
    assert row is not None and row.status is Status.PRUNED and row.pruned_at is not None


def test_housekeeping_settles_then_prunes(product: Product):
    old = backed_up(product)
    product.clock.now += timedelta(days=31)
    fresh = start_backup(product.runtime, "contoso-apim", Trigger.CLI).backup.backup_name
    function_app.housekeeping_timer(TimerRequest())
    assert product.runtime.ledger.get("contoso-apim", fresh).status is Status.SUCCEEDED  # type: ignore[union-attr]
    assert product.runtime.ledger.get("contoso-apim", old).status is Status.PRUNED  # type: ignore[union-attr]
    assert blob_names(product) == {fresh}


def test_a_backup_being_restored_is_not_pruned(product: Product):
    product.reconfigure(RETENTION_DAYS="1", MIN_KEEP="0")
    name = backed_up(product)
    product.clock.now += timedelta(days=2)  # past retention, not expired
    product.stack.control.set_duration(3600)
    start_restore(product.runtime, RestoreRequest(name, "contoso-standby"), Trigger.CLI)
    report = json.loads(function_app.prune(http("POST", "prune")).get_body())
    assert report["pruned"] == []
    assert name in blob_names(product)


def test_pruning_before_any_backup_is_a_no_op(product: Product):
    response = function_app.prune(http("POST", "prune"))
    assert response.status_code == 200
    assert json.loads(response.get_body())["pruned"] == []


def test_no_thread_outlives_a_backup_or_its_polls(product: Product):
    product.stack.control.set_duration(600)
    before = set(threading.enumerate())
    response = function_app.start_backup(http("POST", "backups", b'{"service": "contoso-apim"}'))
    operation_id = json.loads(response.get_body())["operationId"]
    function_app.get_operation(http("GET", "x", route_params={"operationId": operation_id}))
    function_app.housekeeping_timer(TimerRequest())
    leftover = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert leftover == []


def test_cli_backup_wait_list_and_restore(product: Product, capsys, monkeypatch):
    for name, value in product.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(product.stack.azurite.workdir.name)  # no local.settings.json here
    product.stack.control.set_duration(2)
    assert cli(["backup", "--service", "contoso-apim", "--wait", "--poll-seconds", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "still running" in out and "Succeeded" in out

    assert cli(["list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["SERVICE", "BACKUP", "STATUS"]
    assert "contoso-apim" in table[1] and "Succeeded" in table[1]
    name = table[1].split()[1]

    assert cli(["restore", name, "--target", "fabrikam-standby", "--dry-run"]) == 1
    assert "SkuMismatch" in capsys.readouterr().out
    assert cli(["restore", name, "--target", "contoso-standby", "--dry-run"]) == 0
    assert '"wouldStart": true' in capsys.readouterr().out
    assert cli(["restore", name, "--target", "nowhere"]) == 2
    assert "TargetNotAllowed" in capsys.readouterr().err
    assert product.arm_requests("POST", "/restore") == []

    product.clock.now += timedelta(days=31)
    assert cli(["prune", "--dry-run"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dryRun"] is True and [p["backupName"] for p in report["pruned"]] == [name]
    assert name in blob_names(product)
