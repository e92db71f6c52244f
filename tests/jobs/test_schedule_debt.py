"""Missed scheduled backups are owed and caught up by housekeeping (issue 13 item 2),
and every failure an operator must hear of is a signal (item 6)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from azure.functions.timer import TimerRequest

import function_app
from devstack.stack import LocalStack
from shared.jobs import debts
from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.jobs.restores import RestoreRequest, start_restore
from shared.rules.model import Status, Trigger
from shared.signals import LOGGER_NAME
from tests.emulator import RG, make_client, params
from tests.product import Product, body_of, get_operation, http, signals

pytestmark = pytest.mark.stack


def health() -> tuple[int, dict[str, dict[str, Any]]]:
    response = function_app.health(http("GET", "health"))
    return response.status_code, {s["service"]: s for s in body_of(response)["services"]}


def at_0200(product: Product) -> None:
    product.clock.now = (product.clock.now + timedelta(days=1)).replace(
        hour=2, minute=0, second=0, microsecond=0
    )


def housekeeping(product: Product, minutes: float = 5) -> None:
    product.clock.now += timedelta(minutes=minutes)
    function_app.housekeeping_timer(TimerRequest())


def keep_busy(stack: LocalStack, service: str, seconds: int) -> None:
    """Another management operation (a deployment, say) holds the service Updating."""
    stack.control.set_duration(seconds)
    make_client(stack).api_management_service.begin_backup(
        RG, service, params(f"deployment-{service}.apimbackup"), polling=False
    )
    stack.control.set_duration(0)


def succeeded(product: Product, service: str) -> list[str]:
    return [
        r.backup_name
        for r in product.runtime.ledger.records(service=service, status=Status.SUCCEEDED)
    ]


def test_a_start_refused_at_0200_is_caught_up_and_health_shows_the_debt(
    product: Product, caplog: pytest.LogCaptureFixture
):
    at_0200(product)
    keep_busy(product.stack, "contoso-apim", 3600)
    due = product.clock.now

    function_app.scheduled_backup(TimerRequest())

    status, services = health()
    assert status == 503
    debt = services["contoso-apim"]["missedSchedule"]
    assert debt["since"] == due.isoformat().replace("+00:00", "Z")
    assert debt["attempts"] == 1
    assert "OperationInProgress" in debt["lastError"] and "Updating" in debt["lastError"]
    assert debt["nextAttemptAt"] == (due + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    assert services["contoso-apim"]["healthy"] is False
    assert services["contoso-standby"]["missedSchedule"] is None

    housekeeping(product)  # 02:05: still busy; tried, refused, backs off
    _, services = health()
    assert services["contoso-apim"]["missedSchedule"]["attempts"] == 2
    assert succeeded(product, "contoso-apim") == []

    product.stack.control.advance_clock(3601)  # the deployment ends
    housekeeping(product, 10)  # 02:15: the owed backup starts
    housekeeping(product)  # 02:20: it has finished
    assert len(succeeded(product, "contoso-apim")) == 1
    status, services = health()
    assert status == 200 and services["contoso-apim"]["missedSchedule"] is None
    housekeeping(product)
    assert debts.owed(product.runtime) == {}
    # Never owed past the 2-hour grace: no alert.
    assert signals(caplog, "ScheduleOwed") == []


def test_a_manual_backup_pays_the_debt(product: Product):
    at_0200(product)
    keep_busy(product.stack, "contoso-apim", 600)
    function_app.scheduled_backup(TimerRequest())
    assert health()[1]["contoso-apim"]["missedSchedule"] is not None

    product.stack.control.advance_clock(601)
    product.clock.now += timedelta(minutes=1)
    response = function_app.start_backup(http("POST", "backups", b'{"service": "contoso-apim"}'))
    assert body_of(get_operation(body_of(response)["operationId"]))["status"] == "Succeeded"

    assert health()[1]["contoso-apim"]["missedSchedule"] is None
    housekeeping(product)
    assert debts.owed(product.runtime) == {}
    assert len(succeeded(product, "contoso-apim")) == 1  # no catch-up on top of it


def test_a_scheduled_backup_that_fails_is_owed_and_retried(
    product: Product, caplog: pytest.LogCaptureFixture
):
    at_0200(product)
    product.stack.control.fail_next_operation("contoso-apim", "BackupFailed", "Disk on fire")
    function_app.scheduled_backup(TimerRequest())
    housekeeping(product, 1)  # settles: Failed, and owed

    assert signals(caplog, "BackupFailed")[0]["service"] == "contoso-apim"
    debt = health()[1]["contoso-apim"]["missedSchedule"]
    assert debt is not None and "Disk on fire" in debt["lastError"]

    housekeeping(product, 5)  # retried
    housekeeping(product, 5)  # settled
    assert len(succeeded(product, "contoso-apim")) == 1
    assert health()[1]["contoso-apim"]["missedSchedule"] is None


def test_a_scheduled_run_that_never_happened_is_noticed(product: Product):
    at_0200(product)
    function_app.scheduled_backup(TimerRequest())
    housekeeping(product, 1)
    first = {s: succeeded(product, s) for s in ("contoso-apim", "contoso-standby")}
    assert all(len(names) == 1 for names in first.values())

    # The next night the host is down at 02:00 (or storage is): no tick, no mark.
    at_0200(product)
    housekeeping(product, 5)  # within the slack: the tick may still be running
    assert debts.owed(product.runtime) == {}
    housekeeping(product, 10)  # 02:15: noticed, owed, started
    housekeeping(product, 5)
    for service in ("contoso-apim", "contoso-standby"):
        assert len(succeeded(product, service)) == 2
    assert health()[0] == 200


def test_storage_down_at_the_tick_is_owed_through_the_schedule(product: Product, monkeypatch):
    at_0200(product)
    function_app.scheduled_backup(TimerRequest())
    housekeeping(product, 1)

    at_0200(product)
    from azure.core.exceptions import ServiceRequestError

    def unreachable(*args: object, **kwargs: object) -> None:
        raise ServiceRequestError("storage unreachable")

    table = type(product.runtime.ledger.table)
    monkeypatch.setattr(table, "create_entity", unreachable)
    monkeypatch.setattr(table, "upsert_entity", unreachable)
    posts = len(product.arm_requests("POST", "/backup"))
    function_app.scheduled_backup(TimerRequest())  # every write fails: logged, not raised
    monkeypatch.undo()
    assert len(product.arm_requests("POST", "/backup")) == posts  # nothing started
    assert debts.owed(product.runtime) == {}  # and no debt could be written
    housekeeping(product, 15)  # the schedule's last run left no mark: owed, started
    housekeeping(product, 5)
    for service in ("contoso-apim", "contoso-standby"):
        assert len(succeeded(product, service)) == 2


def test_owed_past_its_grace_is_signalled(product: Product, caplog: pytest.LogCaptureFixture):
    at_0200(product)
    keep_busy(product.stack, "contoso-apim", 6 * 3600)
    function_app.scheduled_backup(TimerRequest())
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        housekeeping(product, 60)
        assert signals(caplog, "ScheduleOwed") == []
        housekeeping(product, 61)  # 2 h 1 min after 02:00
    [owed] = signals(caplog, "ScheduleOwed")
    assert owed["service"] == "contoso-apim"
    assert owed["since"].endswith("T02:00:00Z") and owed["attempts"] >= 2
    assert "OperationInProgress" in owed["lastError"]
    record = next(r for r in caplog.records if "ScheduleOwed" in r.getMessage())
    assert record.levelno == logging.WARNING


def test_failed_backups_and_restores_are_signalled(
    product: Product, caplog: pytest.LogCaptureFixture
):
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    finish_running(product.runtime)
    product.stack.control.fail_next_operation("contoso-apim", "BackupFailed", "Disk on fire")
    failed = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    product.stack.control.fail_next_operation("contoso-standby", "RestoreFailed", "Bad SKU")
    restore = start_restore(
        product.runtime,
        RestoreRequest(started.backup.backup_name, "contoso-standby"),
        Trigger.CLI,
    )
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        finish_running(product.runtime)

    [backup_signal] = signals(caplog, "BackupFailed")
    assert backup_signal == {
        "service": "contoso-apim",
        "backupName": failed.backup.backup_name,
        "operationId": failed.operation.operation_id,
        "error": "BackupFailed: Disk on fire",
    }
    [restore_signal] = signals(caplog, "RestoreFailed")
    assert restore_signal == {
        "service": "contoso-standby",
        "backupName": started.backup.backup_name,
        "operationId": restore.operation_id,
        "error": "RestoreFailed: Bad SKU",
        "sourceService": "contoso-apim",
    }
    assert all(
        r.levelno == logging.ERROR for r in caplog.records if r.getMessage().startswith("SIGNAL")
    )


def test_a_refused_start_is_signalled(product: Product, caplog: pytest.LogCaptureFixture):
    product.reconfigure(
        BACKUP_ACCESS_TYPE="UserAssignedManagedIdentity",
        BACKUP_IDENTITY_CLIENT_ID="99999999-9999-9999-9999-999999999999",
    )
    response = function_app.start_backup(http("POST", "backups", b'{"service": "contoso-apim"}'))
    assert response.status_code == 502
    [signal] = signals(caplog, "BackupFailed")
    assert signal["service"] == "contoso-apim" and "clientId" in signal["error"]
    assert signal["operationId"] and signal["backupName"].startswith("contoso-apim-")


def test_rpo_breaches_are_signalled_by_housekeeping(
    product: Product, caplog: pytest.LogCaptureFixture
):
    for service in ("contoso-apim", "contoso-standby"):
        start_backup(product.runtime, service, Trigger.CLI)
    housekeeping(product, 1)
    assert signals(caplog, "RpoBreached") == []

    product.clock.now += timedelta(hours=27)
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        housekeeping(product, 0)
    breaches = {s["service"]: s for s in signals(caplog, "RpoBreached")}
    assert set(breaches) == {"contoso-apim", "contoso-standby"}
    apim = breaches["contoso-apim"]
    assert apim["rpoHours"] == 26.0 and 27 <= apim["ageHours"] < 27.1
    assert apim["newestBackup"] == succeeded(product, "contoso-apim")[0]


def test_an_abandoned_row_is_signalled(product: Product, caplog: pytest.LogCaptureFixture):
    from tests.jobs.test_backups import test_abandoned_running_row_is_failed_by_housekeeping

    test_abandoned_running_row_is_failed_by_housekeeping(product)
    [signal] = signals(caplog, "BackupFailed")
    assert signal["backupName"] == "contoso-apim-20200101T000000Z.apimbackup"
    assert "Abandoned" in signal["error"]


@pytest.mark.parametrize(
    "writes", [1, 2, 3], ids=["before-the-ledger-row", "before-the-lock", "before-the-debt"]
)
def test_a_failed_scheduled_backup_is_owed_though_its_settling_tick_died(
    product: Product, writes: int, caplog: pytest.LogCaptureFixture
):
    """The simulated year's night of 2027-10-26: the scheduled backup fails in APIM, and
    the housekeeping tick that polls it dies after saving the operation Failed, before
    its ledger row, the lock or the debt. The tick had left its mark, so no run was
    missed; the night's backup must still be owed and caught up."""
    from bench.year.faults import Crash, CrashingTable, CrashPlan
    from shared.jobs import housekeeping as core

    runtime = product.reconfigure(APIM_SERVICES=product.stack.service_id("contoso-apim"))
    at_0200(product)
    product.stack.control.fail_next_operation("contoso-apim", "BackupFailed", "Disk on fire")
    function_app.scheduled_backup(TimerRequest())  # started, and the run's mark written
    assert debts.owed(runtime) == {}

    product.clock.now += timedelta(minutes=5)
    plan = CrashPlan(writes)  # the operation row's verdict is the first write
    ledger_table, operations_table = runtime.ledger.table, runtime.operations.table
    runtime.ledger.table = CrashingTable(ledger_table, plan)  # type: ignore[assignment]
    runtime.operations.table = CrashingTable(operations_table, plan)  # type: ignore[assignment]
    try:
        with pytest.raises(Crash):
            core.run(runtime)
    finally:
        runtime.ledger.table, runtime.operations.table = ledger_table, operations_table
    assert list(runtime.operations.running()) == []  # the Failed verdict was saved
    assert debts.owed(runtime) == {}  # the debt died with the process
    # ...but not the signal: it follows the stored verdict at once (nothing polls it again).
    [failed] = signals(caplog, "BackupFailed")
    assert failed["service"] == "contoso-apim" and "Disk on fire" in failed["error"]

    housekeeping(product, 5)  # 02:10: neither taken nor owed: owed now, and started
    [debt] = debts.owed(runtime).values()
    assert debt.since == product.clock.now - timedelta(minutes=10) and debt.operation_id
    assert "Disk on fire" in debt.last_error
    housekeeping(product, 5)  # 02:15: the catch-up has succeeded; the debt is paid
    assert len(succeeded(product, "contoso-apim")) == 1
    assert debts.owed(runtime) == {}
    assert health()[0] == 200
    housekeeping(product, 60)  # the night is covered: nothing more is started
    assert len(succeeded(product, "contoso-apim")) == 1
    assert len(product.arm_requests("POST", "/backup")) == 2
    assert len(signals(caplog, "BackupFailed")) == 1


def test_a_debt_noted_after_apim_took_the_start_is_paid_by_that_backup(
    product: Product, monkeypatch: pytest.MonkeyPatch
):
    """Issue 17, defect 6: APIM accepts the 02:00 backup, then recording its URL fails
    after a slow storage timeout (the clock has moved on). The tick owes the night; the
    backup APIM took, named ...T020000Z, is settled from evidence and must pay that debt:
    no second backup is started for it."""
    from azure.core.exceptions import ServiceRequestError

    runtime = product.reconfigure(APIM_SERVICES=product.stack.service_id("contoso-apim"))
    at_0200(product)
    save = runtime.operations.save

    def timing_out(operation: Any) -> Any:
        if operation.operation_url:  # APIM has answered: the write that records its URL
            product.clock.now += timedelta(seconds=30)
            raise ServiceRequestError("storage timed out")
        return save(operation)

    monkeypatch.setattr(runtime.operations, "save", timing_out)
    function_app.scheduled_backup(TimerRequest())
    monkeypatch.undo()

    [debt] = debts.owed(runtime).values()
    assert debt.since <= product.clock.now - timedelta(seconds=30)  # not the failure's time
    for _ in range(4):  # 20 minutes of housekeeping: settled from evidence, debt paid
        housekeeping(product)
    assert len(succeeded(product, "contoso-apim")) == 1
    assert debts.owed(runtime) == {}
    assert len(product.arm_requests("POST", "/backup")) == 1  # no second backup
    assert health()[0] == 200
