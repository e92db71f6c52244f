"""If APIM does not show `Updating` while a backup runs (Microsoft's how-to says it does;
the REST API does not promise it), the evidence rule can judge a long unconfirmed backup Failed before APIM writes its
blob. What the product then does, against the emulator set to stay `Succeeded`: the
failure is signalled (a false alarm is the safe mistake), no second backup starts while
APIM still runs the first, and the next pruning pass finds the blob and makes the row
`Succeeded`: the backup is not lost to the ledger (docs/reliability.md, "What APIM shows
during a backup")."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError

import function_app
from shared.jobs.backups import start_backup
from shared.jobs.operations import LOCK_GRACE, finish_running
from shared.rules.model import Status, Trigger
from tests.emulator import RG, make_client, params
from tests.product import Product, body_of, http, signals

pytestmark = pytest.mark.stack


def test_the_emulator_can_stay_succeeded_during_a_backup_and_still_refuses_a_second(
    product: Product,
):
    control = product.stack.control
    control.set_duration(600)
    control.set_state_during_backup("Succeeded")
    start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    assert control.service("contoso-apim")["provisioningState"] == "Succeeded"
    [running] = control.operations()
    assert running["status"] == "Running"
    # APIM itself (not only the product's lock) refuses a second operation meanwhile.
    client = make_client(product.stack, retry_total=0)
    with pytest.raises(HttpResponseError) as refused:
        client.api_management_service.begin_backup(RG, "contoso-apim", params("second.apimbackup"))
    assert refused.value.status_code == 409
    control.set_state_during_backup("Updating")
    assert control.service("contoso-apim")["provisioningState"] == "Updating"


def test_a_backup_judged_failed_before_its_blob_is_found_by_the_next_pruning_pass(
    product: Product, caplog: pytest.LogCaptureFixture
):
    caplog.set_level("INFO")
    control = product.stack.control
    control.set_duration(1800)  # longer than the 10 minutes' grace
    control.set_state_during_backup("Succeeded")
    control.inject_fault(method="POST", path_contains="/backup", status=500, accept=True)

    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    assert started.operation.unconfirmed
    name = started.backup.backup_name

    # Past the grace the service looks idle and there is no blob: judged Failed.
    product.clock.now += LOCK_GRACE + timedelta(seconds=1)
    [settled] = finish_running(product.runtime)
    assert settled.status is Status.FAILED
    assert "did not take the backup" in (settled.error or "")
    assert [s["backupName"] for s in signals(caplog, "BackupFailed")] == [name]
    # APIM still runs it: a second start is refused, nothing is duplicated.
    retry = function_app.start_backup(
        http("POST", "backups", json.dumps({"service": "contoso-apim"}).encode())
    )
    assert retry.status_code == 409  # from APIM this time: the product's lock is free
    assert [op["status"] for op in control.operations()] == ["Running"]

    control.advance_clock(1801)  # APIM finishes and writes the blob
    assert control.service("contoso-apim")["provisioningState"] == "Succeeded"

    response = function_app.prune(http("POST", "prune"))
    assert response.status_code == 200
    body = body_of(response)
    assert [(e["backupName"], e["status"]) for e in body["found"]] == [(name, "Failed")]
    row = product.runtime.ledger.get("contoso-apim", name)
    assert row is not None and row.status is Status.SUCCEEDED
    assert (row.size_bytes or 0) > 0
    assert (row.error or "").startswith("Judged Failed from evidence, then found")
