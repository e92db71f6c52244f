"""The emulator's record of what APIM did, as the simulated year's oracle reads it: a clock
that moves only when told (so the record is in the simulation's time), each backup's size,
and the operations that changed since a moment."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from devstack.stack import LocalStack
from tests.emulator import RG, make_client, params

pytestmark = pytest.mark.stack

MOMENT = datetime(2027, 3, 4, 2, 0, tzinfo=UTC)


def _backup(stack: LocalStack, service: str = "contoso-apim") -> str:
    name = f"{service}-{uuid.uuid4().hex[:12]}.apimbackup"
    client = make_client(stack)
    client.api_management_service.begin_backup(RG, service, params(name), polling=False)
    return name


def test_a_set_clock_stands_still_until_advanced(emulator: LocalStack):
    control = emulator.control
    assert datetime.fromisoformat(control.set_clock(MOMENT.isoformat())) == MOMENT
    assert datetime.fromisoformat(control.now()) == MOMENT  # no wall time leaks in
    control.advance_clock(90)
    assert datetime.fromisoformat(control.now()) == MOMENT + timedelta(seconds=90)
    control.reset()
    assert abs(datetime.fromisoformat(control.now()) - datetime.now(UTC)) < timedelta(minutes=1)


def test_operations_carry_their_times_in_the_set_clock_and_the_backup_size(
    emulator: LocalStack,
):
    control = emulator.control
    control.set_clock(MOMENT.isoformat())
    control.set_duration(300)
    name = _backup(emulator)
    control.advance_clock(300)
    [operation] = control.operations()
    assert operation["backupName"] == name
    assert datetime.fromisoformat(operation["startedAt"]) == MOMENT
    assert datetime.fromisoformat(operation["dueAt"]) == MOMENT + timedelta(seconds=300)
    assert operation["status"] == "Succeeded"
    assert operation["sizeBytes"] > 100  # the JSON document the emulator wrote


def test_operations_since_lists_what_changed(emulator: LocalStack):
    control = emulator.control
    control.set_clock(MOMENT.isoformat())
    control.set_duration(60)
    first = _backup(emulator, "contoso-apim")
    control.advance_clock(120)
    assert [op["backupName"] for op in control.operations()] == [first]  # ended at +120 s
    later = (MOMENT + timedelta(seconds=600)).isoformat()
    control.advance_clock(600)
    second = _backup(emulator, "contoso-standby")
    assert [op["backupName"] for op in control.operations_since(later)] == [second]
    everything = control.operations_since(MOMENT.isoformat())
    assert {op["backupName"] for op in everything} == {first, second}
