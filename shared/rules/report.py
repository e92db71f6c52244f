"""The report's views: per service, what an operator asks of a backup product, as values.

Rows in (ledger rows, operation rows, debts), view values out; ``python -m shared
report`` renders them (:mod:`shared.rules.report_html`) and the Azure Monitor workbook
answers the same questions from the log records (infra/app/workbook.json). Pure: the
caller passes ``now``.

- the age of the newest restorable backup against ``RPO_HOURS``;
- the last ``NIGHTS`` nights (UTC dates): ``success`` when a backup made that night
  succeeded, ``failure`` when backups were made and none succeeded, ``none`` otherwise;
- each ended backup's duration and size, oldest first;
- the last restore of the service's backups (a standby sync is the drill), how long it
  took, its drift count;
- the open debt (an owed scheduled backup) and the certificates of the newest manifest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from shared.rules.debts import Debt
from shared.rules.manifest import parse_time
from shared.rules.model import (
    BackupRecord,
    OperationKind,
    OperationRecord,
    Status,
    newest,
    newest_restorable,
    utc,
)

NIGHTS = 30
SUCCESS, FAILURE, NONE = "success", "failure", "none"


@dataclass(frozen=True)
class Night:
    day: date
    state: str  # SUCCESS, FAILURE or NONE
    backups: int  # how many backups were made that night


@dataclass(frozen=True)
class BackupPoint:
    backup_name: str
    created_at: datetime
    status: str
    duration_seconds: float
    size_bytes: int | None


@dataclass(frozen=True)
class Drill:
    backup_name: str
    source: str
    target: str
    trigger: str
    status: str
    started_at: datetime
    completed_at: datetime | None
    duration_seconds: float | None  # None while it runs
    drift_count: int | None  # None when no drift was computed
    error: str | None


@dataclass(frozen=True)
class OpenDebt:
    since: datetime
    attempts: int
    last_error: str
    next_attempt_at: datetime


@dataclass(frozen=True)
class Certificate:
    host_name: str
    subject: str
    thumbprint: str
    expires_at: datetime
    days_left: int
    warning: bool  # within CERT_WARNING_DAYS (or expired)


@dataclass(frozen=True)
class ServiceView:
    service: str
    newest_backup: str | None
    age_hours: float | None  # None: no restorable backup
    within_rpo: bool
    nights: tuple[Night, ...]
    backups: tuple[BackupPoint, ...]
    last_restore: Drill | None
    debt: OpenDebt | None
    certificates: tuple[Certificate, ...]

    @property
    def healthy(self) -> bool:
        return self.within_rpo and self.debt is None


@dataclass(frozen=True)
class ReportView:
    generated_at: datetime
    rpo_hours: float
    cert_warning_days: int
    services: tuple[ServiceView, ...]


def build(
    now: datetime,
    rpo_hours: float,
    cert_warning_days: int,
    backups: Mapping[str, Sequence[BackupRecord]],
    operations: Iterable[OperationRecord],
    debts: Mapping[str, Debt],
) -> ReportView:
    """The report of every service in ``backups`` (its keys, in their order)."""
    restores = [op for op in operations if op.kind is OperationKind.RESTORE]
    views = tuple(
        service_view(
            service,
            now,
            rpo_hours,
            cert_warning_days,
            rows,
            [op for op in restores if (op.source_service or op.service) == service],
            debts.get(service),
        )
        for service, rows in backups.items()
    )
    return ReportView(utc(now), rpo_hours, cert_warning_days, views)


def service_view(
    service: str,
    now: datetime,
    rpo_hours: float,
    cert_warning_days: int,
    rows: Sequence[BackupRecord],
    restores: Sequence[OperationRecord],
    debt: Debt | None,
) -> ServiceView:
    found = newest_restorable(rows, now)
    age = None if found is None else (now - found.created_at).total_seconds() / 3600
    return ServiceView(
        service=service,
        newest_backup=None if found is None else found.backup_name,
        age_hours=None if age is None else round(age, 2),
        within_rpo=age is not None and age <= rpo_hours,
        nights=nights(rows, now),
        backups=backup_points(rows),
        last_restore=last_restore(restores),
        debt=None
        if debt is None
        else OpenDebt(debt.since, debt.attempts, debt.last_error, debt.next_attempt_at),
        certificates=certificates(rows, now, cert_warning_days),
    )


def nights(rows: Iterable[BackupRecord], now: datetime, count: int = NIGHTS) -> tuple[Night, ...]:
    """The last ``count`` UTC dates, oldest first, today last. A Pruned row counts as a
    success when it carries no error (pruning keeps the row, not the outcome's status)."""
    today = utc(now).date()
    first = today - timedelta(days=count - 1)
    made: dict[date, list[BackupRecord]] = {}
    for row in rows:
        day = utc(row.created_at).date()
        if first <= day <= today:
            made.setdefault(day, []).append(row)
    result = []
    for offset in range(count):
        day = first + timedelta(days=offset)
        of_day = made.get(day, [])
        result.append(Night(day, _night_state(of_day), len(of_day)))
    return tuple(result)


def _night_state(rows: Sequence[BackupRecord]) -> str:
    if any(_succeeded(r) for r in rows):
        return SUCCESS
    if any(r.status is not Status.RUNNING for r in rows):
        return FAILURE
    return NONE


def _succeeded(row: BackupRecord) -> bool:
    return row.status is Status.SUCCEEDED or (row.status is Status.PRUNED and row.error is None)


def backup_points(rows: Iterable[BackupRecord]) -> tuple[BackupPoint, ...]:
    """Every ended backup (a completion time), oldest first."""
    ended = [r for r in rows if r.completed_at is not None and r.status is not Status.RUNNING]
    ended.sort(key=lambda r: (r.created_at, r.backup_name))
    return tuple(
        BackupPoint(
            r.backup_name,
            r.created_at,
            r.status.value,
            max(0.0, (r.completed_at - r.created_at).total_seconds()),  # type: ignore[operator]
            r.size_bytes,
        )
        for r in ended
    )


def last_restore(restores: Iterable[OperationRecord]) -> Drill | None:
    """The most recently started restore of the service's backups (into any target)."""
    op = max(restores, key=lambda o: (o.created_at, o.operation_id), default=None)
    if op is None:
        return None
    duration = (
        None
        if op.completed_at is None
        else max(0.0, (op.completed_at - op.created_at).total_seconds())
    )
    return Drill(
        backup_name=op.backup_name,
        source=op.source_service or op.service,
        target=op.service,
        trigger=op.trigger.value,
        status=op.status.value,
        started_at=op.created_at,
        completed_at=op.completed_at,
        duration_seconds=duration,
        drift_count=None if op.drift is None else len(op.drift),
        error=op.error,
    )


def certificates(
    rows: Iterable[BackupRecord], now: datetime, warning_days: int
) -> tuple[Certificate, ...]:
    """The certificates of the newest backup with a manifest, soonest expiry first."""
    with_manifest = newest(r for r in rows if r.manifest_blob)
    if with_manifest is None:
        return ()
    found = []
    for cert in with_manifest.certificates:
        expiry = parse_time(cert.get("expiresAt"))
        if expiry is None:
            continue
        left = expiry - utc(now)
        found.append(
            Certificate(
                host_name=_text(cert.get("hostName")),
                subject=_text(cert.get("subject")),
                thumbprint=_text(cert.get("thumbprint")),
                expires_at=expiry,
                days_left=math.floor(left.total_seconds() / 86400),
                warning=left <= timedelta(days=warning_days),
            )
        )
    return tuple(sorted(found, key=lambda c: (c.expires_at, c.host_name)))


def _text(value: Any) -> str:
    return "" if value is None else str(value)
