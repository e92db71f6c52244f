"""Restore drills with RTO (issue 20 item 3): standby sync is the drill; every restore
exposes its duration; health shows each standby pair's last drill and warns when none
has succeeded within DRILL_WARNING_DAYS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.jobs.backups import start_backup
from shared.jobs.restores import RestoreRequest, start_restore
from shared.rules.model import Trigger, iso
from tests.product import Product, body_of, get_operation, http

pytestmark = pytest.mark.stack


def health() -> dict[str, Any]:
    return body_of(function_app.health(http("GET", "health")))


def housekeeping(product: Product, minutes: float) -> None:
    product.clock.now += timedelta(minutes=minutes)
    function_app.housekeeping_timer(TimerRequest())


def standby(product: Product) -> None:
    product.reconfigure(STANDBY_PAIRS="contoso-apim=>contoso-standby", DRILL_WARNING_DAYS="3")


def test_every_restore_reports_its_duration(product: Product):
    backup = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    housekeeping(product, 1)
    product.stack.control.set_duration(300)  # APIM's restore takes 5 minutes of its clock
    restore = start_restore(
        product.runtime, RestoreRequest(backup.backup.backup_name, "contoso-standby"), Trigger.CLI
    )
    running = body_of(get_operation(restore.operation_id))
    assert running["status"] == "Running" and running["durationSeconds"] is None
    product.stack.control.set_duration(0)
    product.stack.control.advance_clock(300)
    product.clock.now += timedelta(minutes=4.5)
    done = body_of(get_operation(restore.operation_id))
    assert done["status"] == "Succeeded" and done["durationSeconds"] == 270.0


def test_health_shows_the_last_drill_and_warns_when_none_succeeded_lately(product: Product):
    standby(product)
    housekeeping(product, 0)  # the source is first seen
    assert health()["warnings"]["drills"] == []  # never drilled, but newly configured
    assert health()["drills"] == [
        {"service": "contoso-apim", "target": "contoso-standby", "lastDrill": None,
         "lastSucceededAt": None, "warning": None}
    ]  # fmt: skip
    backup = start_backup(product.runtime, "contoso-apim", Trigger.SCHEDULE)
    housekeeping(product, 1)
    function_app.standby_sync(TimerRequest())
    housekeeping(product, 6)
    [drill] = health()["drills"]
    last = drill["lastDrill"]
    assert last["backupName"] == backup.backup.backup_name
    assert last["status"] == "Succeeded" and last["durationSeconds"] == 360.0
    assert isinstance(last["driftCount"], int)
    assert drill["lastSucceededAt"] == last["completedAt"] == iso(product.clock.now)
    assert health()["warnings"]["drills"] == []

    # The next night's drill fails: the last drill says so, the last success stays.
    product.clock.now += timedelta(days=1)
    start_backup(product.runtime, "contoso-apim", Trigger.SCHEDULE)
    housekeeping(product, 1)
    product.stack.control.fail_next_operation("contoso-standby", "RestoreFailed", "Bad SKU")
    function_app.standby_sync(TimerRequest())
    housekeeping(product, 2)
    [failed] = health()["drills"]
    assert failed["lastDrill"]["status"] == "Failed"
    assert failed["lastDrill"]["driftCount"] is None
    assert failed["lastSucceededAt"] == drill["lastSucceededAt"]

    # Past DRILL_WARNING_DAYS without a success: a warning, never unhealthy by itself.
    product.clock.now += timedelta(days=3)
    [warning] = health()["warnings"]["drills"]
    assert warning["service"] == "contoso-apim" and warning["target"] == "contoso-standby"
    assert drill["lastSucceededAt"] in warning["reason"]


def test_a_pair_never_drilled_warns_after_drill_warning_days(product: Product):
    standby(product)
    housekeeping(product, 0)
    product.clock.now += timedelta(days=3, minutes=1)
    [warning] = health()["warnings"]["drills"]
    assert warning["reason"] == "no restore drill has succeeded in the last 3 days"
