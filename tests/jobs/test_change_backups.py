"""Change backups end to end against Azurite and the emulator: events in, debounced
backups out through housekeeping, paid by any later backup, shown by health, the
ledger, GET /api/backups and the CLI (docs/change-backups.md)."""

from __future__ import annotations

import pytest

import function_app
from shared.__main__ import format_table
from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.rules.model import Status, Trigger
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
