"""Catch-up starts owed backups in parallel, within an overall budget (issue 17, defect 8):
ten throttled services, each allowed 60 s of throttle waits one after the other, would
outlast the function's 10-minute timeout."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from shared.jobs import catchup, debts
from shared.jobs.housekeeping import Report
from shared.rules.naming import ServiceId
from tests.product import Product

pytestmark = pytest.mark.stack

SERVICES = ("contoso-apim", "contoso-standby")


def owe_all(product: Product) -> None:
    for name in SERVICES:
        service = product.runtime.settings.find_service(name)
        assert isinstance(service, ServiceId)
        debts.record_missed(product.runtime, service, "missed at 02:00")
    product.clock.now += timedelta(minutes=5)  # the first retry is due


def test_throttled_catch_ups_wait_side_by_side(product: Product):
    product.reconfigure(MAX_PARALLEL="8")
    owe_all(product)
    # Each service's first start is throttled; both throttle waits must be in flight at
    # once (one after the other, the first would wait for the second forever: 5 s here).
    both_waiting = threading.Barrier(len(SERVICES), timeout=5)

    def sleep(seconds: float) -> None:
        both_waiting.wait()

    product.runtime.apim.sleep = sleep
    product.stack.control.inject_fault(
        method="POST", path_contains="/backup", status=429, retry_after=30, times=len(SERVICES)
    )

    results = catchup.catch_up(product.runtime)

    assert sorted((r.service, r.outcome) for r in results) == [(s, "started") for s in SERVICES]
    assert [r["status"] for r in product.arm_requests("POST", "/backup")].count(202) == 2


def test_the_pass_stops_starting_once_its_budget_is_spent(product: Product):
    product.reconfigure(MAX_PARALLEL="1")
    owe_all(product)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the throttle wait takes time on the product's clock
        waits.append(seconds)
        product.clock.now += timedelta(seconds=seconds)

    product.runtime.apim.sleep = sleep
    product.stack.control.inject_fault(
        method="POST", path_contains="/backup", status=429, retry_after=45, times=1
    )

    results = catchup.catch_up(product.runtime, budget=timedelta(seconds=30))

    # The first start waited 45 s: past the budget, so the second is left to the next tick.
    assert [r.outcome for r in results] == ["started", "deferred"]
    assert "(1 deferred: the pass's budget was spent)" in Report(catch_up=results).summary()
    assert waits == [45]
    assert len([r for r in product.arm_requests("POST", "/backup") if r["status"] == 202]) == 1
    deferred = debts.get(product.runtime, results[1].service)
    assert deferred is not None and deferred.attempts == 1 and not deferred.operation_id
