"""The order of writes when an operation is settled (docs/ledger.md, "Order of writes";
shared/jobs/operations.py): the operation row first, guarded by its ETag, so that of two
settlers exactly one verdict wins; the ledger row second, following that verdict; the
lock last, so a crash anywhere before it leaves the service locked and the next tick
repairs the ledger (issue 17, "Documented rules with no test"). Against Azurite and the
emulator.
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running, refresh
from shared.rules.model import Status, Trigger
from tests.product import Product

pytestmark = pytest.mark.stack

SERVICE = "contoso-apim"


def test_of_two_settlers_exactly_one_verdict_wins(
    product: Product, caplog: pytest.LogCaptureFixture
):
    """Two hosts read the same running operation. Host A settles it Succeeded. Host B,
    from its older read, is told Failed by its poll (a 400): its write of the verdict
    meets A's ETag, and it takes A's verdict instead. No Failed row, no BackupFailed."""
    runtime = product.runtime
    control = product.stack.control
    control.set_duration(600)
    started = start_backup(runtime, SERVICE, Trigger.CLI)
    read_by_b = runtime.operations.get(started.operation.operation_id)
    assert read_by_b is not None and read_by_b.is_running
    control.advance_clock(601)

    by_a = refresh(runtime, read_by_b)
    control.inject_fault(
        method="GET",
        path_contains="/operationresults/",
        status=400,
        code="InvalidRequest",
        message="B was told something else",
    )
    by_b = refresh(runtime, read_by_b)

    assert by_a.operation.status is Status.SUCCEEDED
    assert by_b.operation.status is Status.SUCCEEDED  # A's verdict, read back
    stored = runtime.operations.get(started.operation.operation_id)
    assert stored is not None and stored.status is Status.SUCCEEDED and stored.error is None
    row = runtime.ledger.get(SERVICE, started.backup.backup_name)
    assert row is not None and row.status is Status.SUCCEEDED
    assert "SIGNAL BackupFailed" not in caplog.text
    assert len(product.arm_requests("GET", "/operationresults/")) == 2  # B did poll


@pytest.mark.parametrize("crash_at", ["ledger-row", "lock"])
def test_the_lock_is_released_last(product: Product, crash_at: str):
    """The process dies settling a finished backup, at the ledger row's write or at the
    lock's release: the verdict is stored, and the lock is still held (the ledger row
    may still say Running, so no other start may begin meanwhile). The next housekeeping
    tick settles the ledger row from the operation; the ended operation's lock is stale
    and the next start takes it over."""
    runtime = product.runtime
    started = start_backup(runtime, SERVICE, Trigger.CLI)
    operation_id = started.operation.operation_id

    def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise KeyboardInterrupt("simulated crash")  # no handler catches it

    target = runtime.ledger if crash_at == "ledger-row" else runtime.operations
    method = "save" if crash_at == "ledger-row" else "release"
    real = getattr(target, method)
    setattr(target, method, crash)
    try:
        with pytest.raises(KeyboardInterrupt):
            finish_running(runtime)
    finally:
        setattr(target, method, real)

    stored = runtime.operations.get(operation_id)
    assert stored is not None and stored.status is Status.SUCCEEDED  # the verdict: first
    assert runtime.operations.lock_holder(SERVICE) == operation_id  # the lock: last
    row = runtime.ledger.get(SERVICE, started.backup.backup_name)
    assert row is not None
    assert row.status is (Status.RUNNING if crash_at == "ledger-row" else Status.SUCCEEDED)

    function_app.housekeeping_timer(TimerRequest())  # the next tick

    row = runtime.ledger.get(SERVICE, started.backup.backup_name)
    assert row is not None and row.status is Status.SUCCEEDED and (row.size_bytes or 0) > 0
    again = start_backup(runtime, SERVICE, Trigger.CLI)  # the stale lock is taken over
    assert runtime.operations.lock_holder(SERVICE) == again.operation.operation_id
