"""Pruning beside a write-once (immutable) backup container, end to end on POST /api/prune.

infra/ puts a time-based immutability policy on the backup container (no more days than
RETENTION_DAYS), so a blob cannot be deleted while it is young, and can be once the
policy has lapsed. Azurite has no immutability policies; the refusal it can really
produce is a delete of a leased blob (412 LeaseIdMissing), which reaches pruning the same
way as the 409 of an immutable blob: a per-blob failure in the batch delete. So: while
the blob is held, pruning reports it and changes nothing about it; once the hold ends,
the next pass prunes it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

import function_app
from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.rules.model import Trigger
from tests.product import Product, body_of, http

pytestmark = pytest.mark.stack


def backed_up(product: Product, service: str) -> str:
    name = start_backup(product.runtime, service, Trigger.CLI).backup.backup_name
    finish_running(product.runtime)
    return name


def status_of(name: str) -> str:
    response = function_app.get_backup(
        http("GET", f"backups/{name}", route_params={"backupName": name})
    )
    assert response.status_code == 200
    return str(body_of(response)["status"])


def test_a_refused_delete_is_reported_and_pruned_once_the_hold_ends(product: Product):
    held = backed_up(product, "contoso-apim")
    free = backed_up(product, "contoso-standby")
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    product.clock.now += timedelta(days=31)  # both expired: due for pruning
    lease = container.get_blob_client(held).acquire_lease(lease_duration=-1)

    response = function_app.prune(http("POST", "prune"))

    assert response.status_code == 200  # reported, not a 500
    body = body_of(response)
    assert [e["name"] for e in body["errors"]] == [held]
    assert "412" in body["errors"][0]["error"]
    assert [p["backupName"] for p in body["pruned"]] == [free]
    assert status_of(held) == "Succeeded"  # the ledger still tells the truth
    assert container.get_blob_client(held).exists()
    assert status_of(free) == "Pruned"

    lease.release()  # the policy has lapsed
    product.clock.now += timedelta(minutes=5)  # the next housekeeping pass

    body = body_of(function_app.prune(http("POST", "prune")))

    assert body["errors"] == []
    assert [p["backupName"] for p in body["pruned"]] == [held]
    assert status_of(held) == "Pruned"
    assert not container.get_blob_client(held).exists()


def test_housekeeping_goes_on_when_pruning_is_refused(product: Product):
    from shared.jobs import housekeeping

    held = backed_up(product, "contoso-apim")
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    product.clock.now += timedelta(days=31)
    lease = container.get_blob_client(held).acquire_lease(lease_duration=-1)
    try:
        report = housekeeping.run(product.runtime)  # the timer's whole pass: no exception
    finally:
        lease.release()
    # The refusal is in the report the timer logs, and the row is left as it was.
    assert [e["name"] for e in report.prune["errors"]] == [held]
    assert status_of(held) == "Succeeded"
