"""Change backups end to end against Azurite and the emulator: events in, debounced
backups out through housekeeping, paid by any later backup, shown by health, the
ledger, GET /api/backups and the CLI (docs/change-backups.md)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest

import function_app
from shared.__main__ import format_table
from shared.jobs import changes, housekeeping
from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.rules.changes import Verdict
from shared.rules.model import BackupRecord, Status, Trigger
from tests.product import Product, body_of, http

pytestmark = pytest.mark.stack


def test_a_change_backup_keeps_what_changed_on_its_row_and_shows_it(product: Product):
    changes = ("apis/orders-api;Rev=1 updated", "namedValues/backend-host write")
    started = start_backup(product.runtime, "contoso-apim", Trigger.CHANGE, changes=changes)
    finish_running(product.runtime)

    row = product.runtime.ledger.get("contoso-apim", started.backup.backup_name)
    assert row is not None and row.trigger is Trigger.CHANGE and row.changes == changes
    listed = body_of(function_app.list_backups(http("GET", "backups")))["value"]
    assert listed[0]["trigger"] == "change"
    assert listed[0]["changes"] == list(changes)
    table = format_table([row]).splitlines()
    assert table[0].split()[3] == "TRIGGER" and " change " in table[1]
    assert table[2:] == [f"    changed: {what}" for what in changes]


def test_other_backups_have_no_changes_field(product: Product):
    start_backup(product.runtime, "contoso-apim", Trigger.HTTP)
    listed = body_of(function_app.list_backups(http("GET", "backups")))["value"]
    assert listed[0]["trigger"] == "http" and "changes" not in listed[0]
    assert listed[0]["status"] == Status.RUNNING.value


# Events in, debounced change backups out ------------------------------------------------


def event(product: Product, minutes: float = 0, path: str = "/apis/orders-api;Rev=1", **extra):
    """An APIM APIUpdated event for contoso-apim, ``minutes`` after the test's start."""
    service_id = product.stack.service_id("contoso-apim")
    when = product.clock.now + timedelta(minutes=minutes)
    return {
        "id": str(uuid.uuid4()),
        "topic": service_id,
        "subject": path,
        "data": {"resourceUri": service_id + path},
        "eventType": "Microsoft.ApiManagement.APIUpdated",
        "eventTime": when.isoformat().replace("+00:00", "Z"),
        "dataVersion": "1",
        **extra,
    }


def tick(product: Product, minutes: float) -> housekeeping.Report:
    """Move the clock by ``minutes`` and run housekeeping."""
    product.clock.now += timedelta(minutes=minutes)
    return housekeeping.run(product.runtime)


def change_backups(product: Product) -> list[BackupRecord]:
    rows = product.runtime.ledger.records(service="contoso-apim")
    return [r for r in rows if r.trigger is Trigger.CHANGE]


def health(product: Product) -> tuple[int, dict]:
    response = function_app.health(http("GET", "health"))
    return response.status_code, body_of(response)


def pending_of(body: dict, service: str = "contoso-apim") -> dict | None:
    (entry,) = [s for s in body["services"] if s["service"] == service]
    return entry["pendingChange"]


def test_a_burst_of_changes_gives_one_backup_after_the_quiet_period(product: Product):
    start = product.clock.now
    for i in range(20):  # 20 changes within 5 minutes
        changes.receive(product.runtime, event(product, i * 0.25, f"/apis/api-{i % 4}"))

    report = tick(product, 10)  # 5 minutes after the last change: not quiet yet
    assert [c.outcome for c in report.change_backups] == ["waiting"]
    assert change_backups(product) == []
    shown = pending_of(health(product)[1])
    assert shown is not None and shown["count"] == 20
    assert shown["since"] == start.isoformat().replace("+00:00", "Z")
    assert shown["oldestUnprotectedMinutes"] == 10.0

    report = tick(product, 10)  # 15 minutes of quiet
    assert [c.outcome for c in report.change_backups] == ["started"]
    (row,) = change_backups(product)
    assert row.changes[-1] == "apis/api-3 updated" and len(row.changes) == 10

    finish_running(product.runtime)
    report = tick(product, 5)
    assert [c.outcome for c in report.change_backups] == ["paid"]
    assert pending_of(health(product)[1]) is None
    assert len(change_backups(product)) == 1
    assert list(product.runtime.changes.pending()) == []


def test_a_duplicate_delivery_changes_nothing(product: Product):
    body = event(product)
    assert changes.receive(product.runtime, body).verdict is Verdict.CHANGE
    before = product.runtime.changes.get("contoso-apim")
    changes.receive(product.runtime, body)
    after = product.runtime.changes.get("contoso-apim")
    assert before is not None and after is not None
    assert after.count == 1 and after.etag == before.etag


def test_a_scheduled_or_on_demand_backup_after_the_last_change_pays_it(product: Product):
    changes.receive(product.runtime, event(product))
    product.clock.now += timedelta(minutes=2)
    start_backup(product.runtime, "contoso-apim", Trigger.HTTP)
    finish_running(product.runtime)

    # Housekeeping sees the success before the quiet period is over: nothing to start.
    assert pending_of(health(product)[1]) is None  # health pays it in memory already
    report = tick(product, 30)
    assert [c.outcome for c in report.change_backups] == ["paid"]
    assert change_backups(product) == []


def test_a_change_made_while_a_backup_runs_stays_pending(product: Product):
    product.stack.control.set_duration(600)
    start_backup(product.runtime, "contoso-apim", Trigger.HTTP)
    changes.receive(product.runtime, event(product, 1))
    report = tick(product, 20)  # quiet long enough, but the service is busy
    assert [c.outcome for c in report.change_backups] == ["busy"]

    product.stack.control.advance_clock(601)
    tick(product, 1)  # the HTTP backup ends; it started before the change: pays nothing
    row = product.runtime.changes.get("contoso-apim")
    assert row is not None and row.is_pending


def test_the_daily_cap_holds_and_says_why(product: Product):
    product.reconfigure(CHANGE_BACKUPS_PER_DAY="1", CHANGE_QUIET_MINUTES="0")
    changes.receive(product.runtime, event(product))
    assert [c.outcome for c in tick(product, 1).change_backups] == ["started"]
    finish_running(product.runtime)
    changes.receive(product.runtime, event(product, 5))

    report = tick(product, 10)

    assert [c.outcome for c in report.change_backups] == ["waiting"]
    assert "CHANGE_BACKUPS_PER_DAY=1" in report.change_backups[0].reason
    assert len(change_backups(product)) == 1
    product.clock.now += timedelta(hours=24)
    assert [c.outcome for c in tick(product, 1).change_backups] == ["started"]


def test_change_rpo_minutes_turns_health_503_and_signals(product: Product, caplog):
    product.reconfigure(
        APIM_SERVICES=product.stack.service_id("contoso-apim"),
        CHANGE_RPO_MINUTES="30",
        CHANGE_BACKUPS_PER_DAY="0",
    )
    changes.receive(product.runtime, event(product))
    start_backup(product.runtime, "contoso-apim", Trigger.HTTP)  # an older backup: RPO_HOURS ok
    finish_running(product.runtime)
    changes.receive(product.runtime, event(product, 1))
    product.clock.now += timedelta(minutes=20)
    assert health(product)[0] == 200

    with caplog.at_level(logging.ERROR, logger="apim_backup.signals"):
        report = tick(product, 15)

    status, body = health(product)
    assert status == 503 and body["changeRpoMinutes"] == 30
    (entry,) = [s for s in body["services"] if s["service"] == "contoso-apim"]
    assert not entry["healthy"] and "unprotected for more than 30 minutes" in entry["reason"]
    assert report.unprotected == ["contoso-apim"]
    assert any(m.startswith("SIGNAL ChangeUnprotected ") for m in caplog.messages)


def test_foreign_own_and_malformed_events_record_nothing(product: Product):
    standby = event(product)
    standby["data"]["resourceUri"] = product.stack.service_id("other-apim") + "/apis/a"
    own = event(product, eventType="Microsoft.Resources.ResourceActionSuccess")
    own["data"]["operationName"] = "Microsoft.ApiManagement/service/backup/action"
    for body, verdict in [
        (standby, Verdict.FOREIGN),
        (own, Verdict.OWN),
        ({"id": "x", "eventType": 7}, Verdict.MALFORMED),
        ("not json at all", Verdict.MALFORMED),
    ]:
        assert changes.receive(product.runtime, body).verdict is verdict
    assert list(product.runtime.changes.all()) == []


def test_a_service_no_longer_configured_loses_its_pending_change(product: Product):
    changes.receive(product.runtime, event(product))
    product.reconfigure(APIM_SERVICES=product.stack.service_id("contoso-standby"))
    assert tick(product, 30).change_backups == []
    assert list(product.runtime.changes.all()) == []
