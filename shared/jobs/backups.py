"""Backups: start one (timer, HTTP, CLI), and read the ledger's backups.

The scheduled tick that starts one per service is :mod:`shared.jobs.schedule`; whether
each service's backups are recent enough is :mod:`shared.jobs.health`."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.adapters.ledger import Conflict
from shared.jobs.operations import (
    launch,
    new_operation,
    new_operation_id,
    storage_target,
    take_lock,
)
from shared.rules import errors, manifest
from shared.rules.checks import check_backup_start, require_idle, resolve_service
from shared.rules.model import (
    BACKUP_LIFETIME,
    BackupRecord,
    OperationKind,
    OperationRecord,
    Status,
    Trigger,
    newest_first,
    newest_restorable,
)
from shared.rules.naming import ServiceId, backup_name, next_second
from shared.runtime import Runtime

log = logging.getLogger(__name__)

# A start within the same second as an existing backup takes the next free second;
# more than this many collisions means something is wrong, not busy.
MAX_NAME_ATTEMPTS = 60
# The longest APIM resource ID: /subscriptions/<36>/resourceGroups/<90>
# /providers/Microsoft.ApiManagement/service/<50>. No service reference is longer.
MAX_SERVICE_REF_LENGTH = 250
# An APIM service name (what the ledger partitions by, in lower case).
_SERVICE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,48}[A-Za-z0-9]")


@dataclass(frozen=True)
class Started:
    operation: OperationRecord
    backup: BackupRecord


def start_backup(
    runtime: Runtime,
    service_ref: str | None,
    trigger: Trigger,
    cors_rules: Callable[[], int | None] | None = None,
    changes: tuple[str, ...] = (),
) -> Started:
    """Pre-check, lock, record, then ask APIM to back up. Never waits for the backup.

    ``cors_rules``: where the backup account's CORS rule count comes from (a tick reads
    it once for all its services); by default, read now. ``changes``: what a change
    backup is for, kept on its ledger row."""
    settings = runtime.settings
    service = resolve_service(settings.apim_services, service_ref)
    info = runtime.apim.describe(service)
    cors = cors_rules() if cors_rules is not None else runtime.blobs.cors_rule_count()
    check_backup_start(info, cors, service.name, settings.storage_account)

    operation_id = new_operation_id()
    take_lock(runtime, service, operation_id)
    try:
        require_idle(info, service.name)
        record = _add_ledger_row(runtime, service, info.sku, trigger, operation_id, changes)
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
    if operation.operation_url:  # unconfirmed starts are settled from evidence later
        noted = _write_manifest(runtime, service, record, info.settings)
        record = _record_url(runtime, record, operation.operation_url, noted)
    log.info(
        "Backup %s of %s started (operation %s, %s)",
        record.backup_name,
        service.name,
        operation_id,
        trigger.value,
    )
    return Started(operation, record)


def _write_manifest(
    runtime: Runtime, service: ServiceId, record: BackupRecord, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """Write the settings manifest beside the backup: the pre-checks' service GET, plus one
    GET of its Azure Monitor diagnostic settings. The ledger changes that name it (or say
    why there is none). Never raises: the backup itself is already under way, and the
    next backup writes a manifest of its own."""
    name = manifest.manifest_blob_name(record.backup_name)
    if not settings:
        return {"manifest_error": "Resource Manager's answer held no settings to record"}
    try:
        diagnostics, why = runtime.apim.try_diagnostic_settings(service)
        document = manifest.manifest_document(
            record.backup_name,
            record.service_id,
            record.created_at,
            {**settings, "diagnosticSettings": diagnostics},
            {"diagnosticSettings": why} if why else None,
        )
        runtime.blobs.write_json(name, document)
    except Exception as exc:
        log.warning("Manifest %s could not be written: %s", name, type(exc).__name__)
        return {"manifest_error": f"The manifest could not be written: {type(exc).__name__}"}
    return {"manifest_blob": name, "certificates": tuple(manifest.certificates(settings))}


def _record_url(
    runtime: Runtime, record: BackupRecord, url: str, changes: Mapping[str, Any] | None = None
) -> BackupRecord:
    """Note the URL (and the manifest's name) on the ledger row. APIM has accepted the
    backup by now, so nothing here may fail the request: a row settled meanwhile (a fast
    backup, a concurrent status call) keeps its outcome and gains the URL; a row that
    cannot be written is logged, the operation row has the URL anyway."""
    extra = dict(changes or {})
    for _ in range(3):
        try:
            return runtime.ledger.save(record.with_changes(operation_url=url, **extra))
        except Conflict:
            latest = runtime.ledger.get(record.service, record.backup_name)
            if latest is None:
                break
            record = latest
        except Exception:
            log.exception("Could not note the operation URL on %s", record.backup_name)
            break
    return record.with_changes(operation_url=url, **extra)


def _add_ledger_row(
    runtime: Runtime,
    service: ServiceId,
    sku: str,
    trigger: Trigger,
    operation_id: str,
    changes: tuple[str, ...] = (),
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
            changes=changes,
        )
        try:
            return runtime.ledger.add(record)
        except Conflict:
            moment = next_second(moment)
    raise errors.BackupNameUnavailable(
        f"No free backup name for {service.name} in the {MAX_NAME_ATTEMPTS} seconds from "
        f"{moment - timedelta(seconds=MAX_NAME_ATTEMPTS):%H:%M:%S}"
    )


def list_backups(
    runtime: Runtime,
    service_ref: str | None = None,
    status: str | None = None,
    include_expired: bool = False,
) -> list[BackupRecord]:
    """The ledger, newest first."""
    service = _service_filter(runtime, service_ref) if service_ref else None
    wanted = _parse_status(status)
    now = runtime.clock()
    # Unexpired backups are the last 30 days': only those travel, unless asked for all.
    since = None if include_expired else now - BACKUP_LIFETIME
    rows = [
        r
        for r in runtime.ledger.records(service=service, status=wanted, since=since)
        if include_expired or not r.is_expired(now)
    ]
    return newest_first(rows)


def _service_filter(runtime: Runtime, ref: str) -> str:
    """The ledger partition a ``service`` filter names: a configured service, or the name
    or resource ID of one no longer configured (its history stays readable). Anything
    else is refused before it reaches storage, which answers some values with an error."""
    ref = ref.strip()
    if len(ref) > MAX_SERVICE_REF_LENGTH:
        raise errors.BadRequest(
            f"'service' is longer than a resource ID ({MAX_SERVICE_REF_LENGTH} characters)",
            "service",
        )
    settings = runtime.settings
    found = settings.find_service(ref) or settings.find_restore_target(ref)
    if found is not None:
        return found.key
    if _SERVICE_NAME.fullmatch(ref):
        return ref.lower()
    try:
        return ServiceId.parse(ref).key
    except ValueError:
        raise errors.BadRequest(
            "'service' must be an API Management service name or resource ID", "service"
        ) from None


def _parse_status(status: str | None) -> Status | None:
    if status is None or not status.strip():
        return None
    for candidate in Status:
        if candidate.value.lower() == status.strip().lower():
            return candidate
    allowed = ", ".join(s.value for s in Status)
    raise errors.BadRequest(f"'status' must be one of {allowed}", "status")


def get_backup(runtime: Runtime, name: str) -> BackupRecord:
    from shared.rules.naming import parse_backup_name

    try:
        parsed = parse_backup_name(name)
    except ValueError:
        # Not of the backup-name form: no such backup (the contract's 404, not a 400).
        raise errors.BackupNotFound(f"No backup named {name[:100]} in the ledger") from None
    record = runtime.ledger.get(parsed.service, name)
    if record is None:
        raise errors.BackupNotFound(f"No backup named {name} in the ledger")
    return record


def backup_details(runtime: Runtime, name: str) -> dict[str, Any]:
    """``GET /api/backups/{name}``: the list item, plus the manifest (read from its blob)
    and why there is none when it could not be recorded."""
    record = get_backup(runtime, name)
    body = record.to_api(runtime.clock())
    body["manifest"] = None
    body["manifestError"] = record.manifest_error
    if record.manifest_blob:
        try:
            body["manifest"] = runtime.blobs.read_json(record.manifest_blob)
        except Exception as exc:
            log.warning("Manifest %s unreadable: %s", record.manifest_blob, type(exc).__name__)
            body["manifestError"] = f"The manifest could not be read: {type(exc).__name__}"
        if body["manifest"] is None and body["manifestError"] is None:
            body["manifestError"] = "The manifest blob is gone (pruned with its backup?)"
    return body


def find_newest_restorable(runtime: Runtime, service: str, now: datetime) -> BackupRecord | None:
    """The service's newest restorable backup, in one key-range read: only the last 30
    days' Succeeded rows can be restorable (a RowKey range, whatever the history)."""
    since = runtime.ledger.since(service, now - BACKUP_LIFETIME, Status.SUCCEEDED)
    return newest_restorable(since, now)
