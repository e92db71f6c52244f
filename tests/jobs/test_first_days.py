"""A fresh deployment's first hour (issue 20 item 4): no RpoBreached while a service's
first backup is not late, RpoBreached once it is; health says ``pending`` meanwhile.
Clock-driven, through the function app's own handlers, against the local stack."""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.rules.model import Trigger
from tests.jobs.test_schedule_debt import health, housekeeping, keep_busy
from tests.product import Product, signals

pytestmark = pytest.mark.stack


def test_a_fresh_deployments_first_hour_is_quiet_until_a_backup_is_late(
    product: Product, caplog: pytest.LogCaptureFixture
):
    product.reconfigure(RPO_HOURS="1")
    deployed = product.clock.now
    # contoso-standby is busy with something else all along: its first backup never starts.
    keep_busy(product.stack, "contoso-standby", 7200)

    housekeeping(product, 0)  # the first tick after deployment
    status, services = health()
    assert status == 200
    assert {s: services[s]["rpo"] for s in services} == {
        "contoso-apim": "pending",
        "contoso-standby": "pending",
    }
    due = (deployed + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert services["contoso-apim"]["firstBackupDueBy"] == due

    housekeeping(product, 10)
    function_app.scheduled_backup(TimerRequest())  # the schedule's first run
    while product.clock.now + timedelta(minutes=5) < deployed + timedelta(hours=1):
        housekeeping(product, 5)
        assert signals(caplog, "RpoBreached") == [], product.clock.now - deployed
    status, services = health()
    assert services["contoso-apim"]["rpo"] == "healthy"
    assert services["contoso-standby"]["healthy"] is False  # it owes the scheduled backup
    assert services["contoso-standby"]["rpo"] == "pending"  # but the RPO is not broken yet

    housekeeping(product, 5)  # an hour after deployment: the first backup is late
    assert product.clock.now >= deployed + timedelta(hours=1)
    assert signals(caplog, "RpoBreached") == [
        {"service": "contoso-standby", "newestBackup": None, "ageHours": None, "rpoHours": 1.0}
    ]
    status, services = health()
    assert status == 503 and services["contoso-standby"]["rpo"] == "breached"
    assert services["contoso-apim"]["rpo"] == "healthy"


def test_an_upgraded_deployment_whose_service_lost_its_backups_is_not_pending(
    product: Product, caplog: pytest.LogCaptureFixture
):
    """No first-seen mark yet (a deployment from before the marks), and no row of the
    last 30 days, but older history: the service is not new, so it breaches at once."""
    start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    finish_running(product.runtime)
    product.clock.now += timedelta(days=40)
    housekeeping(product, 0)
    breaches = {s["service"] for s in signals(caplog, "RpoBreached")}
    assert "contoso-apim" in breaches
    assert "contoso-standby" not in breaches  # nothing known of it: pending
