"""Restores: every check APIM would fail on is made first, in a fixed order, so that a
restore started during an incident is refused with the exact reason before APIM is
touched, and never writes into a service that is not on the allow-list."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.jobs.backups import MAX_SERVICE_REF_LENGTH, find_newest_restorable
from shared.jobs.operations import (
    launch,
    new_operation,
    new_operation_id,
    storage_target,
    take_lock,
)
from shared.parallel import run_each
from shared.rules import errors
from shared.rules.checks import (
    Check,
    check_sku_match,
    check_target_allowed,
    require_backup_found,
    require_backup_tier,
    require_idle,
    require_no_cors,
    require_no_workspace_gateways,
    require_not_expired,
    require_succeeded,
)
from shared.rules.model import BackupRecord, OperationKind, OperationRecord, Trigger
from shared.rules.naming import ServiceId, parse_backup_name
from shared.rules.service import ServiceInfo
from shared.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreRequest:
    backup_name: str
    target_service: str | None = None
    dry_run: bool = False

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> RestoreRequest:
        name = body.get("backupName")
        if not isinstance(name, str) or not name.strip():
            raise errors.BadRequest("'backupName' is required and must be a string")
        try:
            parse_backup_name(name.strip())
        except ValueError as exc:
            raise errors.BadRequest(f"'backupName': {exc}") from None
        target = body.get("targetService")
        if target is not None and (not isinstance(target, str) or not target.strip()):
            raise errors.BadRequest("'targetService' must be a non-empty string")
        if target is not None and len(target.strip()) > MAX_SERVICE_REF_LENGTH:
            raise errors.BadRequest(
                f"'targetService' is longer than a resource ID "
                f"({MAX_SERVICE_REF_LENGTH} characters)",
                "targetService",
            )
        dry_run = body.get("dryRun", False)
        if not isinstance(dry_run, bool):
            raise errors.BadRequest("'dryRun' must be true or false")
        unknown = set(body) - {"backupName", "targetService", "dryRun"}
        if unknown:
            raise errors.BadRequest(f"Unknown field(s): {', '.join(sorted(unknown))[:200]}")
        return cls(name.strip(), target.strip() if target else None, dry_run)


@dataclass
class _Plan:
    """What the checks learn on the way, for the checks after them."""

    request: RestoreRequest
    now: datetime
    record: BackupRecord | None = None
    target: ServiceId | None = None
    info: ServiceInfo | None = None

    def backup(self) -> BackupRecord:
        return _known(self.record)

    def target_service(self) -> ServiceId:
        return _known(self.target)

    def target_info(self) -> ServiceInfo:
        return _known(self.info)


class _Unknown(Exception):
    """A check needs what an earlier, failed check would have found (dry runs only)."""


def _known[T](value: T | None) -> T:
    if value is None:
        raise _Unknown
    return value


def _backup_exists(runtime: Runtime, plan: _Plan) -> None:
    parsed = parse_backup_name(plan.request.backup_name)
    plan.record = runtime.ledger.get(parsed.service, plan.request.backup_name)
    require_backup_found(plan.record, plan.request.backup_name)


def _backup_succeeded(runtime: Runtime, plan: _Plan) -> None:
    require_succeeded(plan.backup())


def _backup_not_expired(runtime: Runtime, plan: _Plan) -> None:
    require_not_expired(plan.backup(), plan.now)


def _target_allowed(runtime: Runtime, plan: _Plan) -> None:
    record = plan.backup()
    ref = plan.request.target_service or record.service_id or record.service
    plan.target = check_target_allowed(runtime.settings.restore_targets, ref)


def _target_tier(runtime: Runtime, plan: _Plan) -> None:
    target = plan.target_service()
    plan.info = runtime.apim.describe(target)
    require_backup_tier(plan.info.sku, target.name)


def _sku_match(runtime: Runtime, plan: _Plan) -> None:
    check_sku_match(plan.backup().sku, plan.target_info().sku, plan.target_service().name)


def _no_gateways(runtime: Runtime, plan: _Plan) -> None:
    require_no_workspace_gateways(plan.target_info(), plan.target_service().name)


def _no_cors(runtime: Runtime, plan: _Plan) -> None:
    require_no_cors(runtime.blobs.cors_rule_count(), runtime.settings.storage_account)


def _blob_exists(runtime: Runtime, plan: _Plan) -> None:
    record = plan.backup()
    if runtime.blobs.size_of(record.blob_name) is None:
        raise errors.BackupBlobMissing(
            f"The blob of backup {record.backup_name} is missing from container "
            f"{runtime.settings.container}; housekeeping will mark the backup Failed"
        )


def _target_idle(runtime: Runtime, plan: _Plan) -> None:
    target = plan.target_service()
    holder = runtime.operations.lock_holder(target.key)
    running = runtime.operations.get(holder) if holder else None
    if running is not None and running.is_running:
        raise errors.OperationInProgress(
            f"A backup or restore is already running on {target.name} (operation {holder})"
        )
    require_idle(plan.target_info(), target.name)


Step = Callable[[Runtime, _Plan], None]

# The contract's order: the first failure answers.
STEPS: tuple[tuple[Check, Step], ...] = (
    (Check.BACKUP_EXISTS, _backup_exists),
    (Check.BACKUP_SUCCEEDED, _backup_succeeded),
    (Check.BACKUP_NOT_EXPIRED, _backup_not_expired),
    (Check.TARGET_ALLOWED, _target_allowed),
    (Check.TARGET_TIER, _target_tier),
    (Check.SKU_MATCH, _sku_match),
    (Check.NO_WORKSPACE_GATEWAYS, _no_gateways),
    (Check.NO_CORS, _no_cors),
    (Check.BLOB_EXISTS, _blob_exists),
    (Check.TARGET_IDLE, _target_idle),
)


def _check_all(runtime: Runtime, request: RestoreRequest) -> _Plan:
    plan = _Plan(request, runtime.clock())
    for _check, step in STEPS:
        step(runtime, plan)
    return plan


def dry_run(runtime: Runtime, request: RestoreRequest) -> dict[str, Any]:
    """Every check's result; starts and changes nothing."""
    plan = _Plan(request, runtime.clock())
    results: list[dict[str, Any]] = []
    for check, step in STEPS:
        result: dict[str, Any] = {"check": check.value, "result": "Passed"}
        try:
            step(runtime, plan)
        except _Unknown:
            result.update(result="Skipped", reason="depends on a check that failed")
        except errors.ProductError as exc:
            if exc.status >= 500:
                raise
            result.update(result="Failed", code=exc.code, message=exc.message)
        results.append(result)
    return {
        "dryRun": True,
        "backupName": request.backup_name,
        "targetService": plan.target.name if plan.target else request.target_service,
        "wouldStart": all(r["result"] == "Passed" for r in results),
        "checks": results,
    }


def start_restore(runtime: Runtime, request: RestoreRequest, trigger: Trigger) -> OperationRecord:
    """Check, lock the target, record, then ask APIM to restore. Never waits."""
    plan = _check_all(runtime, request)
    assert plan.record is not None and plan.target is not None
    target, record = plan.target, plan.record

    operation_id = new_operation_id()
    take_lock(runtime, target, operation_id)
    try:
        operation = runtime.operations.add(
            new_operation(
                OperationKind.RESTORE, operation_id, target, record.backup_name, trigger, runtime,
                source_service=record.service,
            )
        )  # fmt: skip
    except BaseException:
        runtime.operations.release(target.key, operation_id)
        raise
    operation = launch(
        runtime,
        operation,
        lambda: runtime.apim.start_restore(target, storage_target(runtime), record.backup_name),
    )
    log.info(
        "Restore of %s into %s started (operation %s, %s)",
        record.backup_name, target.name, operation_id, trigger.value,
    )  # fmt: skip
    return operation


def standby_sync(runtime: Runtime) -> list[OperationRecord]:
    """Restore each source's newest restorable backup into its standby, once per backup;
    the pairs MAX_PARALLEL at once, each pair's failure its own."""
    if not runtime.settings.standby_pairs:
        return []
    now = runtime.clock()
    started = run_each(
        runtime.settings.standby_pairs,
        lambda pair: _sync_pair(runtime, pair[0], pair[1], now),
        runtime.settings.max_parallel,
        "standby",
    )
    return [operation for operation in started if operation is not None]


def _sync_pair(
    runtime: Runtime, source: ServiceId, standby: ServiceId, now: datetime
) -> OperationRecord | None:
    """One pair's sync; every failure is caught and logged here."""
    what = f"the newest backup of {source.name}"
    try:
        newest = find_newest_restorable(runtime, source.key, now)
        if newest is None:
            log.warning(
                "standby_sync: %s has no restorable backup to restore into %s",
                source.name,
                standby.name,
            )
            return None
        if runtime.operations.restore_attempted(standby.key, newest.backup_name):
            log.info(
                "standby_sync: %s already restored (or tried) into %s",
                newest.backup_name,
                standby.name,
            )
            return None
        what = newest.backup_name
        request = RestoreRequest(newest.backup_name, standby.resource_id)
        return start_restore(runtime, request, Trigger.STANDBY)
    except errors.ProductError as exc:
        log.warning(
            "standby_sync: restore of %s into %s refused: %s (%s)",
            what,
            standby.name,
            exc.message,
            exc.code,
        )
    except Exception:
        log.exception("standby_sync: restore of %s into %s failed", what, standby.name)
    return None
