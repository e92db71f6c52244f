"""Can every service be restored to within RPO_HOURS? The health route's answer, and
housekeeping's RPO check that signals a breach.

A service is healthy while its newest restorable backup is no older than RPO_HOURS, it
owes no scheduled backup, and (with CHANGE_RPO_MINUTES) no configuration change of it has
been unprotected for longer; the product is healthy while every service is and no
operation is stuck. Certificates about to expire are a warning, never unhealthy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared import signals
from shared.adapters.seen import FirstSeenStore
from shared.jobs import changes, debts, drills
from shared.jobs.operations import LOCK_GRACE
from shared.parallel import run_each
from shared.rules import manifest
from shared.rules.drills import drill_warning, pair_key
from shared.rules.model import BACKUP_LIFETIME, BackupRecord, iso, newest, newest_restorable
from shared.rules.naming import ServiceId
from shared.rules.rpo import RpoState, judge_rpo
from shared.runtime import Runtime


@dataclass(frozen=True)
class Health:
    healthy: bool
    body: dict[str, Any]


def report(runtime: Runtime) -> Health:
    """``GET /api/health``: each service has a restorable backup no older than RPO_HOURS,
    and nothing is stuck."""
    now = runtime.clock()
    rpo = timedelta(hours=runtime.settings.rpo_hours)
    services = runtime.settings.apim_services
    recent = run_each(  # one key-range read per service, MAX_PARALLEL at once
        services, lambda s: _recent(runtime, s.key, now), runtime.settings.max_parallel, "health"
    )
    stuck = _stuck_operations(runtime, now)
    seen = _first_seen_if_needed(runtime, recent, now)
    reports = [
        _service_health(s, rows, seen.get(s.key), now, rpo)
        for s, rows in zip(services, recent, strict=True)
    ]
    _add_missed_schedules(runtime, services, reports)
    _add_pending_changes(runtime, services, recent, reports)
    healthy = all(r["healthy"] for r in reports) and not stuck
    certificates = [
        warning
        for service, rows in zip(services, recent, strict=True)
        for warning in _certificate_warnings(service, rows, now, runtime.settings.cert_warning_days)
    ]
    drilled = _drills(runtime, now)
    body = {
        "status": "Healthy" if healthy else "Unhealthy",
        "rpoHours": runtime.settings.rpo_hours,
        "changeRpoMinutes": runtime.settings.change_rpo_minutes,
        "services": reports,
        "stuckOperations": stuck,
        "drills": drilled,
        "warnings": {
            "certificates": certificates,
            "drills": [
                {"service": d["service"], "target": d["target"], "reason": d["warning"]}
                for d in drilled
                if d["warning"]
            ],
        },
    }
    return Health(healthy, body)


def _drills(runtime: Runtime, now: datetime) -> list[dict[str, Any]]:
    """Each standby pair's last restore drill (shared.rules.drills), and a warning when
    none has succeeded within DRILL_WARNING_DAYS. One query of the drills' rows (none
    without STANDBY_PAIRS), and the first-seen marks only for a pair never drilled."""
    pairs = runtime.settings.standby_pairs
    if not pairs:
        return []
    last = drills.store(runtime).all()
    keyed = [(s.key, t.key, last.get(pair_key(s.key, t.key))) for s, t in pairs]
    never = any(d is None or d.last_succeeded_at is None for _s, _t, d in keyed)
    seen = FirstSeenStore(runtime.operations.table).all() if never else {}
    days = runtime.settings.drill_warning_days
    return [
        {
            "service": source,
            "target": target,
            "lastDrill": None if drill is None else drill.to_api(),
            "lastSucceededAt": iso(drill.last_succeeded_at) if drill else None,
            "warning": drill_warning(now, drill, seen.get(source), days),
        }
        for source, target, drill in keyed
    ]


def _add_missed_schedules(
    runtime: Runtime, services: Sequence[ServiceId], reports: list[dict[str, Any]]
) -> None:
    """A service that owes a scheduled backup is unhealthy until it is paid (one query of
    the owed rows, which are at most one per service)."""
    owed = debts.owed(runtime)
    for service, entry in zip(services, reports, strict=True):
        debt = owed.get(service.key)
        if debt is not None and debts.is_paid(runtime, debt):
            debt = None  # housekeeping deletes the row on its next tick
        entry["missedSchedule"] = None if debt is None else debt.to_api()
        if debt is not None:
            entry["healthy"] = False
            entry["reason"] = entry["reason"] or (
                f"scheduled backup owed since {entry['missedSchedule']['since']}"
            )


def _first_seen_if_needed(
    runtime: Runtime, recent: Sequence[list[BackupRecord]], now: datetime
) -> dict[str, datetime]:
    """The first-seen marks, read only when some service has no restorable backup (the
    only verdict they change): a healthy product's probe costs no more for them."""
    if all(newest_restorable(rows, now) for rows in recent):
        return {}
    return FirstSeenStore(runtime.operations.table).all()


def _add_pending_changes(
    runtime: Runtime,
    services: Sequence[ServiceId],
    recent: Sequence[Sequence[BackupRecord]],
    reports: list[dict[str, Any]],
) -> None:
    """Each service's unprotected configuration change (one query of the pending rows);
    one older than CHANGE_RPO_MINUTES makes the service unhealthy."""
    limit = runtime.settings.change_rpo_minutes
    for entry, shown in zip(
        reports, changes.health_entries(runtime, services, recent), strict=True
    ):
        entry["pendingChange"] = shown
        if changes.unprotected_too_long(shown, limit):
            entry["healthy"] = False
            entry["reason"] = entry["reason"] or (
                f"a configuration change has been unprotected for more than {limit} minutes"
            )


def _recent(runtime: Runtime, service: str, now: datetime) -> list[BackupRecord]:
    """The service's backups of the last 30 days, the only ones that can be restorable
    (a backup is restorable for 30 days at most): a RowKey range of the service's
    partition, one request whatever the history."""
    return list(runtime.ledger.since(service, now - BACKUP_LIFETIME))


def _certificate_warnings(
    service: ServiceId, recent: list[BackupRecord], now: datetime, days: int
) -> list[dict[str, Any]]:
    """Certificates in the service's newest manifest that expire within CERT_WARNING_DAYS.
    From the ledger's copy of the metadata: no blob is read. A warning only: it never
    makes health unhealthy."""
    with_manifest = newest(r for r in recent if r.manifest_blob)
    if with_manifest is None:
        return []
    return manifest.expiring_certificates(service.name, with_manifest.certificates, now, days)


def _service_health(
    service: ServiceId,
    recent: list[BackupRecord],
    first_seen: datetime | None,
    now: datetime,
    rpo: timedelta,
) -> dict[str, Any]:
    """The service's RPO verdict (shared.rules.rpo): a service with no backup yet whose
    first is not late is ``pending``, and healthy."""
    verdict = judge_rpo(now, recent, first_seen, rpo)
    healthy = verdict.state is not RpoState.BREACHED
    if verdict.state is RpoState.BREACHED:
        reason: str | None = (
            "no restorable backup"
            if verdict.newest is None
            else f"newest restorable backup is older than {rpo.total_seconds() / 3600:g} hours"
        )
    else:
        reason = None
    return {
        "service": service.name,
        "healthy": healthy,
        "rpo": verdict.state.value,
        "newestBackup": verdict.newest.backup_name if verdict.newest else None,
        "ageHours": verdict.age_hours,
        "firstBackupDueBy": iso(verdict.first_backup_due),
        "reason": reason,
    }


def _stuck_operations(runtime: Runtime, now: datetime) -> list[dict[str, Any]]:
    limit = timedelta(minutes=runtime.settings.operation_timeout_minutes) + LOCK_GRACE
    return [
        {
            "operationId": op.operation_id,
            "kind": op.kind.value,
            "service": op.service,
            "since": op.created_at.isoformat(),
        }
        for op in runtime.operations.running()
        if now - op.created_at > limit
    ]


# The RPO, checked by housekeeping ------------------------------------------------------


@dataclass(frozen=True)
class RpoBreach:
    service: str
    newest_backup: str | None
    age_hours: float | None


def _first_appearance(runtime: Runtime, service: str, now: datetime) -> datetime:
    """When a service without a mark first appeared: its oldest ledger row of any age
    (RowKeys sort by time, so the partition's first row; one request, once per service
    ever), else now. A deployment from before the marks is not new again."""
    oldest = next(iter(runtime.ledger.records(service=service)), None)
    return now if oldest is None else min(now, oldest.created_at)


def check_rpo(runtime: Runtime) -> list[RpoBreach]:
    """Every service's newest restorable backup against RPO_HOURS; one RpoBreached signal
    per breached service per call (housekeeping calls it every tick, so a stateful alert
    stays fired while the breach lasts and resolves once it ends). A service with no
    backup yet is pending, not breached, until RPO_HOURS after it first appeared
    (shared.rules.rpo); the first call that sees a service marks when."""
    now = runtime.clock()
    rpo = timedelta(hours=runtime.settings.rpo_hours)
    store = FirstSeenStore(runtime.operations.table)
    seen = store.all()
    breaches: list[RpoBreach] = []
    for service in runtime.settings.apim_services:
        first_seen = seen.get(service.key)
        if first_seen is None:
            first_seen = _first_appearance(runtime, service.key, now)
            store.note(service.key, first_seen)
        verdict = judge_rpo(now, _recent(runtime, service.key, now), first_seen, rpo)
        if verdict.state is not RpoState.BREACHED:
            continue
        newest_backup = verdict.newest.backup_name if verdict.newest else None
        breach = RpoBreach(service.key, newest_backup, verdict.age_hours)
        breaches.append(breach)
        signals.emit(
            signals.Signal.RPO_BREACHED,
            service=service.key,
            newestBackup=breach.newest_backup,
            ageHours=breach.age_hours,
            rpoHours=runtime.settings.rpo_hours,
        )
    return breaches
