"""The report's views (rows in, values out) and its HTML (every value escaped)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

from shared.rules import report
from shared.rules.debts import Debt
from shared.rules.model import BackupRecord, OperationKind, OperationRecord, Status, Trigger
from shared.rules.naming import backup_name
from shared.rules.report_html import render

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


def row(
    service: str,
    created: datetime,
    status: Status = Status.SUCCEEDED,
    minutes: float | None = 5,
    size: int | None = 4 * 2**20,
    **changes: object,
) -> BackupRecord:
    record = BackupRecord(
        service=service,
        backup_name=backup_name(service, created),
        service_id=f"/subscriptions/x/providers/Microsoft.ApiManagement/service/{service}",
        storage_account="acct",
        container="backups",
        status=status,
        trigger=Trigger.SCHEDULE,
        created_at=created,
        sku="Developer",
        completed_at=None if minutes is None else created + timedelta(minutes=minutes),
        size_bytes=size,
    )
    return record.with_changes(**changes)


def restore(source: str, target: str, started: datetime, seconds: float | None, **kw: object):
    return OperationRecord(
        operation_id=f"op-{started:%H%M%S}",
        kind=OperationKind.RESTORE,
        service=target,
        service_id="",
        backup_name=backup_name(source, started - timedelta(hours=1)),
        status=Status.SUCCEEDED if seconds is not None else Status.RUNNING,
        trigger=Trigger.STANDBY,
        created_at=started,
        source_service=source,
        completed_at=None if seconds is None else started + timedelta(seconds=seconds),
        **kw,  # type: ignore[arg-type]
    )


def view_of(rows: list[BackupRecord], **kw: object) -> report.ServiceView:
    built = report.build(
        NOW,
        26.0,
        30,
        {"contoso": rows},
        kw.get("operations", []),  # type: ignore[arg-type]
        kw.get("debts", {}),  # type: ignore[arg-type]
    )
    return built.services[0]


def test_age_of_the_newest_restorable_backup_against_the_rpo():
    night = NOW - timedelta(hours=5)
    view = view_of([row("contoso", night), row("contoso", NOW - timedelta(hours=1), Status.FAILED)])
    assert view.newest_backup == backup_name("contoso", night)
    assert view.age_hours == 5.0 and view.within_rpo and view.healthy

    old = view_of([row("contoso", NOW - timedelta(hours=27))])
    assert old.age_hours == 27.0 and not old.within_rpo and not old.healthy

    expired = view_of([row("contoso", NOW - timedelta(days=31))])
    assert expired.newest_backup is None and expired.age_hours is None and not expired.within_rpo


def test_thirty_nights_success_failure_none():
    rows = [
        row("contoso", NOW - timedelta(hours=5)),  # today: success
        row("contoso", NOW - timedelta(days=1), Status.FAILED),  # yesterday: failure...
        row("contoso", NOW - timedelta(days=2), Status.FAILED),  # ...two days ago: failed,
        row("contoso", NOW - timedelta(days=2, hours=-1)),  # then a success the same night
        row("contoso", NOW - timedelta(days=3), Status.PRUNED),  # pruned, no error: a success
        row("contoso", NOW - timedelta(days=4), Status.PRUNED, error="boom"),  # a failure
        row("contoso", NOW - timedelta(days=5), Status.RUNNING, minutes=None),  # none yet
        row("contoso", NOW - timedelta(days=40)),  # outside the grid
    ]
    nights = view_of(rows).nights
    assert len(nights) == 30
    assert nights[-1].day == date(2026, 12, 3) and nights[0].day == date(2026, 11, 4)
    states = [n.state for n in nights[-6:]][::-1]
    assert states == ["success", "failure", "success", "success", "failure", "none"]
    assert nights[-3].backups == 2
    assert {n.state for n in nights[:-6]} == {"none"}


def test_durations_and_sizes_oldest_first_running_left_out():
    rows = [
        row("contoso", NOW - timedelta(days=1), minutes=7, size=3 * 2**20),
        row("contoso", NOW - timedelta(days=2), minutes=4, size=2 * 2**20),
        row("contoso", NOW - timedelta(hours=1), Status.RUNNING, minutes=None),
        row("contoso", NOW - timedelta(hours=2), Status.FAILED, minutes=1, size=None),
    ]
    points = view_of(rows).backups
    assert [p.duration_seconds for p in points] == [240.0, 420.0, 60.0]
    assert [p.size_bytes for p in points] == [2 * 2**20, 3 * 2**20, None]
    assert [p.status for p in points] == ["Succeeded", "Succeeded", "Failed"]


def test_last_restore_of_the_services_backups_with_duration_and_drift():
    ops = [
        restore("contoso", "standby", NOW - timedelta(days=1), 300, drift=()),
        restore(
            "contoso",
            "standby",
            NOW - timedelta(hours=2),
            95,
            drift=({"setting": "a", "source": "1", "target": "2", "action": "x"},),
        ),
        restore("fabrikam", "standby", NOW - timedelta(hours=1), 10),  # another source
    ]
    drill = view_of([], operations=ops).last_restore
    assert drill is not None
    assert drill.duration_seconds == 95.0 and drill.drift_count == 1
    assert drill.source == "contoso" and drill.target == "standby" and drill.status == "Succeeded"
    running = view_of([], operations=[restore("contoso", "s", NOW, None)]).last_restore
    assert running is not None and running.duration_seconds is None and running.drift_count is None
    assert view_of([]).last_restore is None


def test_open_debt_and_certificates():
    debt = Debt("contoso", "id", NOW - timedelta(hours=3), 2, "busy", NOW + timedelta(minutes=5))
    certs = (
        {"hostName": "api.contoso.com", "subject": "CN=api", "thumbprint": "AB",
         "expiresAt": "2026-12-13T00:00:00Z"},
        {"hostName": "old.contoso.com", "subject": "CN=old", "thumbprint": "CD",
         "expiresAt": "2027-06-01T00:00:00Z"},
        {"hostName": "bad", "expiresAt": "not a time"},
    )  # fmt: skip
    rows = [row("contoso", NOW - timedelta(hours=5), manifest_blob="m", certificates=certs)]
    view = view_of(rows, debts={"contoso": debt})
    assert view.debt is not None and view.debt.attempts == 2 and not view.healthy
    assert [(c.host_name, c.days_left, c.warning) for c in view.certificates] == [
        ("api.contoso.com", 9, True),
        ("old.contoso.com", 179, False),
    ]


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_every_value_is_escaped():
    evil = '<script>alert("x")</script>'
    certs = ({"hostName": evil, "subject": evil, "thumbprint": "'\"", "expiresAt": "2027-01-01Z"},)
    rows = [
        row("contoso", NOW - timedelta(hours=5), manifest_blob="m", certificates=certs),
        row("contoso", NOW - timedelta(days=1), Status.FAILED, error=evil),
    ]
    ops = [restore("contoso", "standby", NOW - timedelta(hours=1), 60, error=evil)]
    debt = Debt("contoso", "id", NOW, 1, evil, NOW)
    view = report.build(NOW, 26.0, 30, {evil: rows}, ops, {evil: debt})
    page = render(view)
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    parser = _Collect()
    parser.feed(page)
    assert "script" not in parser.tags
    assert any(evil in text for text in parser.text)  # shown as text, as it was
    assert not re.search(r"(src|href)\s*=", page)  # nothing fetched from anywhere
