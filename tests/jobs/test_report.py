"""The report from a real ledger (Azurite, the APIM emulator, function_app's handlers),
written by ``python -m shared report`` and opened in headless Chromium."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from azure.functions.timer import TimerRequest

import function_app
from shared.__main__ import main
from shared.jobs import debts
from shared.rules.model import Status
from shared.rules.naming import backup_name
from tests.browser import open_page
from tests.product import Product, body_of, http

pytestmark = pytest.mark.stack

PNG = b"\x89PNG\r\n\x1a\n"


def post(route: str, body: dict[str, str]):
    handler = function_app.start_backup if route == "backups" else function_app.start_restore
    response = handler(http("POST", route, json.dumps(body).encode()))
    assert response.status_code == 202, response.get_body()
    return body_of(response)


def settle() -> None:
    function_app.housekeeping_timer(TimerRequest())


def history(product: Product, service: str, days: int, status: Status) -> None:
    """A row as if an earlier night had made it (a test cannot wait a month)."""
    runtime = product.runtime
    newest = max(runtime.ledger.records(service=service), key=lambda r: r.created_at)
    created = runtime.clock() - timedelta(days=days)
    runtime.ledger.add(
        newest.with_changes(
            backup_name=backup_name(service, created),
            created_at=created,
            completed_at=created + timedelta(minutes=3 + days),
            status=status,
            size_bytes=None if status is Status.FAILED else 1000 * days,
            error="Disk on fire" if status is Status.FAILED else None,
            etag=None,
        )
    )


def a_month_of_backups(product: Product) -> None:
    control = product.stack.control
    ok = post("backups", {"service": "contoso-apim"})
    settle()
    control.fail_next_operation("contoso-standby", "BackupFailed", "Disk on fire")
    post("backups", {"service": "contoso-standby"})
    settle()
    post("restores", {"backupName": ok["backupName"], "targetService": "contoso-standby"})
    settle()
    # After the last housekeeping: these rows have no blob, which pruning would repair.
    for days in (1, 2, 4, 7):
        history(product, "contoso-apim", days, Status.SUCCEEDED)
    history(product, "contoso-apim", 3, Status.FAILED)
    service = product.runtime.settings.find_service("contoso-standby")
    assert service is not None
    debts.record_missed(product.runtime, service, "the backup failed: Disk on fire")


def test_report_from_a_real_ledger_renders_in_chromium(
    product: Product, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    a_month_of_backups(product)
    out = tmp_path / "report.html"

    assert main(["report", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    page = out.read_text(encoding="utf-8")
    apim, standby = page.split('data-service="contoso-standby"')
    assert "within the RPO" in apim and "No restorable backup" in standby
    assert apim.count('data-state="success"') == 5 and apim.count('data-state="failure"') == 1
    assert standby.count('data-state="failure"') == 1
    assert "Succeeded" in apim and "contoso-standby" in apim  # the drill, into the standby
    assert "scheduled backup is owed" in standby and "Disk on fire" in standby

    nowhere = tmp_path / "missing" / "report.html"
    assert main(["report", "--out", str(nowhere)]) == 2
    assert f"error: cannot write {nowhere}" in capsys.readouterr().err
    assert not nowhere.parent.exists()

    shown = open_page(out, tmp_path)
    assert shown.screenshot.startswith(PNG) and len(shown.screenshot) > 20_000
    assert shown.console == []
    assert len(re.findall(r"<section data-service=", shown.dom)) == 2
    assert shown.dom.count("<svg") >= 4  # two grids, and the first service's two charts


def test_a_console_error_is_caught(tmp_path: Path):
    """The check above can fail: a page that throws is seen to."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><p>x</p><script>throw new Error('boom')</script>")
    shown = open_page(bad, tmp_path)
    assert any("Uncaught Error: boom" in line for line in shown.console)
