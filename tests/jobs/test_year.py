"""A short simulated year (issue 13 item 5): every fault kind of the matrix at least
once, then every invariant. The full 400 nights are ``make year`` (bench/year/)."""

from __future__ import annotations

import pytest

from bench.year.driver import simulate
from bench.year.faults import FAULTS
from bench.year.world import SERVICES
from devstack.stack import LocalStack

pytestmark = pytest.mark.stack

NIGHTS = 24  # the first 16 nights carry one fault kind each


def test_a_short_year_keeps_every_promise(emulator: LocalStack):
    totals = simulate(emulator, NIGHTS, seed=7)
    print("\n".join(totals.lines()))

    assert totals.problems == []
    assert set(totals.faults) >= set(FAULTS)
    assert totals.rpo_breaches_unexplained == 0
    assert totals.max_age_hours <= 26
    # Each night's scheduled backup of each service happened (scheduled or caught up).
    assert totals.backups_succeeded >= NIGHTS * len(SERVICES)
    assert totals.catch_up_started >= 4  # past-budget, Updating, failed op, storage down
    assert totals.unconfirmed_succeeded >= 2 and totals.unconfirmed_failed >= 2
    assert totals.throttle_waits >= 2 and totals.crashes >= 2
    assert totals.signals["BackupFailed"] >= 1
