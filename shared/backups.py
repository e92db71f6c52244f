"""Backups: start one (timer, HTTP, CLI), read the ledger, judge the service's health."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from shared import errors, schedule
from shared.checks import check_backup_start, require_idle, resolve_service
from shared.ledger import Conflict
from shared.model import BackupRecord, OperationKind, OperationRecord, Status, Trigger
from shared.naming import ServiceId, backup_name, next_second
from shared.operations import (
    LOCK_GRACE,
    launch,
    new_operation,
    new_operation_id,
    storage_target,
    take_lock,
)
from shared.runtime import Runtime

log = logging.getLogger(__name__)

# A start within the same second as an existing backup takes the next free second;
# more than this many collisions means something is wrong, not busy.
MAX_NAME_ATTEMPTS = 60


@dataclass(frozen=True)
class Started:
    operation: OperationRecord
    backup: BackupRecord


def start_backup(runtime: Runtime, service_ref: str | None, trigger: Trigger) -> Started:
    """Pre-check, lock, record, then ask APIM to back up. Never waits for the backup."""
    settings = runtime.settings
    service = resolve_service(settings, service_ref)
    info = runtime.apim.describe(service)
    check_backup_start(
        info, runtime.blobs.cors_rule_count(), service.name, settings.storage_account
    )

    operation_id = new_operation_id()
    take_lock(runtime, service, operation_id)
    try:
        require_idle(info, service.name)
        record = _add_ledger_row(runtime, service, info.sku, trigger, operation_id)
    except BaseException:
        runtime.operations.release(service.key, operation_id)
        raise
    try:
        operation = runtime.operations.add(
            new_operation(
                OperationKind.BACKUP, operation_id, service, record.backup_name, trigger, runtime
            )
        )
    except BaseException:
        runtime.ledger.delete(record)  # no operation will ever settle it
        runtime.operations.release(service.key, operation_id)
        raise

    def failed(message: str) -> None:
        runtime.ledger.save(
            record.with_changes(status=Status.FAILED, error=message, completed_at=runtime.clock())
        )

    operation = launch(
        runtime,
        operation,
        lambda: runtime.apim.start_backup(service, storage_target(runtime), record.backup_name),
        on_refused=lambda: runtime.ledger.delete(record),
        on_failed=failed,
    )
    if operation.operation_url:
        record = _record_url(runtime, record, operation.operation_url)
    log.info(
        "Backup %s of %s started (operation %s, %s)",
        record.backup_name,
        service.name,
        operation_id,
        trigger.value,
    )
    return Started(operation, record)


def _record_url(runtime: Runtime, record: BackupRecord, url: str) -> BackupRecord:
    """Note the URL on the ledger row. APIM has accepted the backup by now, so nothing
    here may fail the request: a row settled meanwhile (a fast backup, a concurrent
    status call) keeps its outcome and gains the URL; a row that cannot be written is
    logged, the operation row has the URL anyway."""
    for _ in range(3):
        try:
            return runtime.ledger.save(record.with_changes(operation_url=url))
        except Conflict:
            latest = runtime.ledger.get(record.service, record.backup_name)
            if latest is None:
                break
            record = latest
        except Exception:
            log.exception("Could not note the operation URL on %s", record.backup_name)
            break
    return record.with_changes(operation_url=url)


def _add_ledger_row(
    runtime: Runtime, service: ServiceId, sku: str, trigger: Trigger, operation_id: str
) -> BackupRecord:
    """Insert the Running row under the first free name (one per service per second)."""
    settings = runtime.settings
    moment = runtime.clock().replace(microsecond=0)
    for _ in range(MAX_NAME_ATTEMPTS):
        record = BackupRecord(
            service=service.key,
            backup_name=backup_name(service.name, moment),
            service_id=service.resource_id,
            storage_account=settings.storage_account,
            container=settings.container,
            status=Status.RUNNING,
            trigger=trigger,
            created_at=moment,
            sku=sku,
            operation_id=operation_id,
        )
        try:
            return runtime.ledger.add(record)
        except Conflict:
            moment = next_second(moment)
    raise errors.BackupNameUnavailable(
        f"No free backup name for {service.name} in the {MAX_NAME_ATTEMPTS} seconds from "
        f"{moment - timedelta(seconds=MAX_NAME_ATTEMPTS):%H:%M:%S}"
    )


def scheduled_backups(runtime: Runtime, trigger: Trigger = Trigger.SCHEDULE) -> list[Started]:
    """One backup per configured service; one that cannot start now is owed, and
    housekeeping starts it later (shared.schedule)."""
    started: list[Started] = []
    for service in runtime.settings.apim_services:
        start = partial(start_backup, runtime, service.resource_id, trigger)
        one = schedule.start_scheduled(runtime, service, start)
        if one is not None:
            started.append(one)
    schedule.mark_tick(runtime)
    return started


def list_backups(
    runtime: Runtime,
    service_ref: str | None = None,
    status: str | None = None,
    include_expired: bool = False,
) -> list[BackupRecord]:
    """The ledger, newest first."""
    service = None
    if service_ref:
        found = runtime.settings.find_service(service_ref) or runtime.settings.find_restore_target(
            service_ref
        )
        service = found.key if found else service_ref.strip().lower()
    wanted = _parse_status(status)
    now = runtime.clock()
    rows = [
        r
        for r in runtime.ledger.records(service=service, status=wanted)
        if include_expired or not r.is_expired(now)
    ]
    return sorted(rows, key=lambda r: (r.created_at, r.backup_name), reverse=True)


def _parse_status(status: str | None) -> Status | None:
    if status is None or not status.strip():
        return None
    for candidate in Status:
        if candidate.value.lower() == status.strip().lower():
            return candidate
    allowed = ", ".join(s.value for s in Status)
    raise errors.BadRequest(f"'status' must be one of {allowed}")


def get_backup(runtime: Runtime, name: str) -> BackupRecord:
    from shared.naming import parse_backup_name

    try:
        parsed = parse_backup_name(name)
    except ValueError:
        # Not of the backup-name form: no such backup (the contract's 404, not a 400).
        raise errors.BackupNotFound(f"No backup named {name[:100]} in the ledger") from None
    record = runtime.ledger.get(parsed.service, name)
    if record is None:
        raise errors.BackupNotFound(f"No backup named {name} in the ledger")
    return record


@dataclass(frozen=True)
class Health:
    healthy: bool
    body: dict[str, Any]


def health(runtime: Runtime) -> Health:
    """Each service has a restorable backup younger than RPO_HOURS, and nothing is stuck."""
    now = runtime.clock()
    rpo = timedelta(hours=runtime.settings.rpo_hours)
    services = [_service_health(runtime, s, now, rpo) for s in runtime.settings.apim_services]
    owed = schedule.debts(runtime)
    for service, entry in zip(runtime.settings.apim_services, services, strict=True):
        debt = owed.get(service.key)
        if debt is not None and schedule.is_paid(runtime, debt):
            debt = None  # housekeeping deletes the row on its next tick
        entry["missedSchedule"] = None if debt is None else debt.to_api()
        if debt is not None:
            entry["healthy"] = False
            entry["reason"] = entry["reason"] or (
                f"scheduled backup owed since {entry['missedSchedule']['since']}"
            )
    stuck = _stuck_operations(runtime, now)
    healthy = all(s["healthy"] for s in services) and not stuck
    body = {
        "status": "Healthy" if healthy else "Unhealthy",
        "rpoHours": runtime.settings.rpo_hours,
        "services": services,
        "stuckOperations": stuck,
    }
    return Health(healthy, body)


def _service_health(
    runtime: Runtime, service: ServiceId, now: datetime, rpo: timedelta
) -> dict[str, Any]:
    restorable = [r for r in runtime.ledger.records(service=service.key) if r.is_restorable(now)]
    newest = max(restorable, key=lambda r: r.created_at, default=None)
    if newest is None:
        return {
            "service": service.name,
            "healthy": False,
            "newestBackup": None,
            "ageHours": None,
            "reason": "no restorable backup",
        }
    age = now - newest.created_at
    healthy = age <= rpo
    return {
        "service": service.name,
        "healthy": healthy,
        "newestBackup": newest.backup_name,
        "ageHours": round(age.total_seconds() / 3600, 2),
        "reason": None
        if healthy
        else f"newest restorable backup is older than {runtime.settings.rpo_hours} hours",
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
