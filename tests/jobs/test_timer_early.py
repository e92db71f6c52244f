"""A timer the host fires a few milliseconds early (…01:59:59.996 for 02:00:
azure-functions-host #7398, #8254) is that night's run (issue 17, defect 2): its backups,
named …T015959Z, cover the 02:00 run; nothing is owed, nothing taken twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.jobs import debts
from shared.rules.model import Status
from tests.product import Product, body_of, http

pytestmark = pytest.mark.stack

SERVICES = ("contoso-apim", "contoso-standby")


def test_a_timer_fired_4_ms_early_is_the_nights_run(product: Product):
    product.clock.now = (product.clock.now + timedelta(days=1)).replace(
        hour=2, minute=0, second=0, microsecond=0
    ) - timedelta(milliseconds=4)  # 01:59:59.996

    function_app.scheduled_backup(TimerRequest())

    names = [r.backup_name for r in product.runtime.ledger.records()]
    assert len(names) == 2 and all("T015959Z" in n for n in names)
    for minutes in (5, 5, 5, 5):  # housekeeping at 02:05 ... 02:20, past the tick's slack
        product.clock.now += timedelta(minutes=minutes)
        function_app.housekeeping_timer(TimerRequest())
        assert debts.owed(product.runtime) == {}
    for service in SERVICES:
        rows = product.runtime.ledger.records(service=service, status=Status.SUCCEEDED)
        assert len(list(rows)) == 1
    assert len(product.arm_requests("POST", "/backup")) == 2  # no catch-up on top
    response = function_app.health(http("GET", "health"))
    assert response.status_code == 200, body_of(response)
