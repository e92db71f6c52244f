"""Outcome records (issue 20 item 1): each settle of a backup or restore emits exactly
one ``OUTCOME`` record, its fields in the message's JSON and as the record's ``extra``,
the duration from the operation row's times."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.jobs.backups import start_backup
from shared.jobs.restores import RestoreRequest, start_restore
from shared.rules import errors
from shared.rules.model import Trigger
from shared.rules.outcomes import FIELD_NAMES, LOGGER_NAME
from tests.product import Product

pytestmark = pytest.mark.stack


def outcomes(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """Each OUTCOME record's JSON; checked equal to its ``extra`` fields on the way."""
    found = []
    for record in caplog.records:
        if record.name != LOGGER_NAME:
            continue
        prefix, payload = record.getMessage().split(" ", 1)
        assert prefix == "OUTCOME" and record.levelno == logging.INFO
        fields = json.loads(payload)
        assert set(fields) == FIELD_NAMES
        assert {k: getattr(record, k) for k in FIELD_NAMES} == fields
        found.append(fields)
    return found


def housekeeping(product: Product, minutes: float) -> None:
    product.clock.now += timedelta(minutes=minutes)
    function_app.housekeeping_timer(TimerRequest())


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)


def test_a_backup_that_succeeds_is_one_record_with_its_size_and_duration(
    product: Product, caplog: pytest.LogCaptureFixture
):
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    assert outcomes(caplog) == []
    housekeeping(product, 7.5)
    housekeeping(product, 5)  # settled already: nothing more
    [record] = outcomes(caplog)
    row = product.runtime.ledger.get("contoso-apim", started.backup.backup_name)
    size = row.size_bytes if row else None
    assert record == {
        "kind": "backup",
        "operationId": started.operation.operation_id,
        "backupName": started.backup.backup_name,
        "service": "contoso-apim",
        "target": None,
        "trigger": "cli",
        "status": "Succeeded",
        "startedAt": record["startedAt"],
        "completedAt": record["completedAt"],
        "durationSeconds": 450.0,
        "sizeBytes": size,
        "errorCode": None,
        "driftCount": None,
    }
    assert size and size > 0


def test_failed_backup_and_restores_each_emit_one_record(
    product: Product, caplog: pytest.LogCaptureFixture
):
    good = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    housekeeping(product, 1)
    product.stack.control.fail_next_operation("contoso-apim", "BackupFailed", "Disk on fire")
    failed = start_backup(product.runtime, "contoso-apim", Trigger.HTTP)
    restored = start_restore(
        product.runtime, RestoreRequest(good.backup.backup_name, "contoso-standby"), Trigger.CLI
    )
    housekeeping(product, 3)
    housekeeping(product, 5)
    by_id = {r["operationId"]: r for r in outcomes(caplog)}
    assert len(by_id) == len(outcomes(caplog)) == 3
    bad = by_id[failed.operation.operation_id]
    assert bad["status"] == "Failed" and bad["errorCode"] == "BackupFailed"
    assert bad["sizeBytes"] is None and bad["trigger"] == "http" and bad["durationSeconds"] == 180
    restore = by_id[restored.operation_id]
    assert restore["kind"] == "restore" and restore["status"] == "Succeeded"
    assert restore["service"] == "contoso-apim" and restore["target"] == "contoso-standby"
    assert restore["durationSeconds"] == 180.0
    ended = product.runtime.operations.get(restored.operation_id)
    assert ended is not None and ended.drift is not None
    assert restore["driftCount"] == len(ended.drift)


def test_a_refused_start_is_one_failed_record(product: Product, caplog: pytest.LogCaptureFixture):
    product.reconfigure(
        BACKUP_ACCESS_TYPE="UserAssignedManagedIdentity",
        BACKUP_IDENTITY_CLIENT_ID="99999999-9999-9999-9999-999999999999",
    )
    with pytest.raises(errors.ProductError) as refused:
        start_backup(product.runtime, "contoso-apim", Trigger.HTTP)
    housekeeping(product, 5)
    [record] = outcomes(caplog)
    assert record["status"] == "Failed" and record["errorCode"] == refused.value.code
    assert record["durationSeconds"] == 0.0 and record["service"] == "contoso-apim"
