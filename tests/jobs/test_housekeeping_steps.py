"""Each step of housekeeping fails alone (issue 17, defects 1 and 5): a refused blob
listing must not silence the RPO alarm, one unreadable operation row must not stop the
tick, and a failed step is itself a signal."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.jobs import housekeeping
from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.rules.model import Trigger
from shared.signals import LOGGER_NAME
from tests.product import Product, http, signals

pytestmark = pytest.mark.stack

CLOSED = "127.0.0.1:1"  # nothing listens on port 1: connections are refused at once


def blobs_refused(product: Product) -> None:
    """The blob endpoint refuses (a firewall, a missing data role); tables still answer."""
    conn = product.env["BACKUP_STORAGE"]
    changed = re.sub(r"BlobEndpoint=http://[^/;]+", f"BlobEndpoint=http://{CLOSED}", conn)
    assert changed != conn
    product.reconfigure(BACKUP_STORAGE=changed)


def test_a_refused_blob_listing_does_not_silence_the_rpo_alarm(
    product: Product, caplog: pytest.LogCaptureFixture
):
    for service in ("contoso-apim", "contoso-standby"):
        start_backup(product.runtime, service, Trigger.CLI)
    finish_running(product.runtime)
    product.clock.now += timedelta(hours=27)
    blobs_refused(product)

    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        report = housekeeping.run(product.runtime)  # no exception: each step fails alone

    breaches = {s["service"] for s in signals(caplog, "RpoBreached")}
    assert breaches == {"contoso-apim", "contoso-standby"}
    assert {b.service for b in report.rpo_breaches} == breaches
    # Pruning and the day's history pass both list the container: each fails alone.
    assert signals(caplog, "HousekeepingStepFailed") == [
        {"step": "prune", "error": "ServiceRequestError"},
        {"step": "history", "error": "ServiceRequestError"},
    ]
    assert report.failed_steps == ["prune", "history"]
    assert "2 step(s) failed: prune, history" in report.summary()


def test_storage_down_fails_every_step_alone_and_the_tick_returns(
    product: Product, caplog: pytest.LogCaptureFixture
):
    conn = product.env["BACKUP_STORAGE"]
    for name in ("TableEndpoint", "BlobEndpoint"):
        conn = re.sub(rf"{name}=http://[^/;]+", f"{name}=http://{CLOSED}", conn)
    product.reconfigure(BACKUP_STORAGE=conn)

    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        report = housekeeping.run(product.runtime)  # no exception

    # "unprotected" reads nothing of its own (the "changes" step's outcomes): it never fails here.
    steps = ["settle", "stranded", "catch-up", "changes", "prune", "history", "rpo"]
    assert report.failed_steps == steps
    assert [s["step"] for s in signals(caplog, "HousekeepingStepFailed")] == steps


def test_a_failed_step_signal_carries_no_secret(product: Product, caplog):
    blobs_refused(product)
    key = re.search(r"AccountKey=([^;]+)", product.env["BACKUP_STORAGE"])
    assert key is not None
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        function_app.housekeeping_timer(TimerRequest())
    messages = [
        r.getMessage() for r in caplog.records if "HousekeepingStepFailed" in r.getMessage()
    ]
    assert messages and all(key.group(1) not in m and CLOSED not in m for m in messages)


def test_an_unreadable_running_operation_row_is_skipped_and_reported(
    product: Product, caplog: pytest.LogCaptureFixture
):
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    bad = started.operation.to_entity() | {"RowKey": "f" * 32, "Kind": "snapshot"}
    product.runtime.operations.table.create_entity(bad)  # a newer version's row, or a hand edit

    with caplog.at_level(logging.WARNING):
        report = housekeeping.run(product.runtime)

    assert [op.operation_id for op in report.settled] == [started.operation.operation_id]
    assert report.unreadable_operations == ["f" * 32]
    assert report.failed_steps == []
    assert "1 unreadable operation row(s) skipped" in report.summary()
    assert any(
        "f" * 32 in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records
    )
    assert function_app.health(http("GET", "health")).status_code in (200, 503)  # never 500
