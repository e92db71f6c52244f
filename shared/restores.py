"""Restores: every check APIM would fail on is made first, in a fixed order, so that a
restore started during an incident is refused with the exact reason before APIM is
touched, and never writes into a service that is not on the allow-list."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import errors
from shared.apim import ServiceInfo
from shared.checks import (
    Check,
    check_backup_usable,
    check_sku_match,
    check_target_allowed,
    require_backup_tier,
    require_idle,
    require_no_cors,
    require_no_workspace_gateways,
)
from shared.model import BackupRecord, OperationKind, OperationRecord, Status, Trigger
from shared.naming import ServiceId, parse_backup_name
from shared.operations import (
    launch,
    new_operation,
    new_operation_id,
    storage_target,
    take_lock,
)
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
    lock_free: bool | None = field(default=None)


Step = Callable[[Runtime, _Plan], None]


def _backup_exists(runtime: Runtime, plan: _Plan) -> None:
    parsed = parse_backup_name(plan.request.backup_name)
    plan.record = runtime.ledger.get(parsed.service, plan.request.backup_name)
    if plan.record is None:
        raise errors.BackupNotFound(f"No backup named {plan.request.backup_name} in the ledger")


def _backup_usable(check: Check) -> Step:
    def step(runtime: Runtime, plan: _Plan) -> None:
        assert plan.record is not None
        record = plan.record
        if check is Check.BACKUP_SUCCEEDED and record.status is Status.SUCCEEDED:
            return
        if check is Check.BACKUP_NOT_EXPIRED and record.status is not Status.SUCCEEDED:
            return  # reported by the previous check
        check_backup_usable(record, record.backup_name, plan.now)

    return step


def _target_allowed(runtime: Runtime, plan: _Plan) -> None:
    assert plan.record is not None
    ref = plan.request.target_service or plan.record.service_id or plan.record.service
    plan.target = check_target_allowed(runtime.settings, ref)


def _target_tier(runtime: Runtime, plan: _Plan) -> None:
    assert plan.target is not None
    plan.info = runtime.apim.describe(plan.target)
    require_backup_tier(plan.info.sku, plan.target.name)


def _sku_match(runtime: Runtime, plan: _Plan) -> None:
    assert plan.record is not None and plan.info is not None and plan.target is not None
    check_sku_match(plan.record.sku, plan.info.sku, plan.target.name)


def _no_gateways(runtime: Runtime, plan: _Plan) -> None:
    assert plan.info is not None and plan.target is not None
    require_no_workspace_gateways(plan.info, plan.target.name)


def _no_cors(runtime: Runtime, plan: _Plan) -> None:
    require_no_cors(runtime.blobs.cors_rule_count(), runtime.settings.storage_account)


def _blob_exists(runtime: Runtime, plan: _Plan) -> None:
    if runtime.blobs.size_of(plan.request.backup_name) is None:
        raise errors.BackupBlobMissing(
            f"The blob of backup {plan.request.backup_name} is missing from container "
            f"{runtime.settings.container}; housekeeping will mark the backup Failed"
        )


def _target_idle(runtime: Runtime, plan: _Plan) -> None:
    assert plan.target is not None and plan.info is not None
    holder = runtime.operations.lock_holder(plan.target.key)
    running = runtime.operations.get(holder) if holder else None
    if running is not None and running.is_running:
        raise errors.OperationInProgress(
            f"A backup or restore is already running on {plan.target.name} (operation {holder})"
        )
    require_idle(plan.info, plan.target.name)


# The contract's order: the first failure answers. Each step names what it needs.
STEPS: tuple[tuple[Check, Step, tuple[str, ...]], ...] = (
    (Check.BACKUP_EXISTS, _backup_exists, ()),
    (Check.BACKUP_SUCCEEDED, _backup_usable(Check.BACKUP_SUCCEEDED), ("record",)),
    (Check.BACKUP_NOT_EXPIRED, _backup_usable(Check.BACKUP_NOT_EXPIRED), ("record",)),
    (Check.TARGET_ALLOWED, _target_allowed, ("record",)),
    (Check.TARGET_TIER, _target_tier, ("target",)),
    (Check.SKU_MATCH, _sku_match, ("record", "info")),
    (Check.NO_WORKSPACE_GATEWAYS, _no_gateways, ("info",)),
    (Check.NO_CORS, _no_cors, ()),
    (Check.BLOB_EXISTS, _blob_exists, ()),
    (Check.TARGET_IDLE, _target_idle, ("target", "info")),
)


def _check_all(runtime: Runtime, request: RestoreRequest) -> _Plan:
    plan = _Plan(request, runtime.clock())
    for _check, step, _needs in STEPS:
        step(runtime, plan)
    return plan


def dry_run(runtime: Runtime, request: RestoreRequest) -> dict[str, Any]:
    """Every check's result; starts and changes nothing."""
    plan = _Plan(request, runtime.clock())
    results: list[dict[str, Any]] = []
    for check, step, needs in STEPS:
        if any(getattr(plan, need) is None for need in needs):
            results.append(
                {"check": check.value, "result": "Skipped", "reason": "an earlier check failed"}
            )
            continue
        try:
            step(runtime, plan)
        except errors.ProductError as exc:
            if exc.status >= 500:
                raise
            results.append(
                {"check": check.value, "result": "Failed", "code": exc.code, "message": exc.message}
            )
        else:
            results.append({"check": check.value, "result": "Passed"})
    passed = all(r["result"] == "Passed" for r in results)
    return {
        "dryRun": True,
        "backupName": request.backup_name,
        "targetService": plan.target.name if plan.target else request.target_service,
        "wouldStart": passed,
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
    """Restore each source's newest restorable backup into its standby, once per backup."""
    started: list[OperationRecord] = []
    if not runtime.settings.standby_pairs:
        return started
    now = runtime.clock()
    attempted = {
        (op.service, op.backup_name)
        for op in runtime.operations.all()
        if op.kind is OperationKind.RESTORE
    }
    for source, standby in runtime.settings.standby_pairs:
        restorable = [r for r in runtime.ledger.records(service=source.key) if r.is_restorable(now)]
        newest = max(restorable, key=lambda r: r.created_at, default=None)
        if newest is None:
            log.warning(
                "standby_sync: %s has no restorable backup to restore into %s",
                source.name,
                standby.name,
            )
            continue
        if (standby.key, newest.backup_name) in attempted:
            log.info(
                "standby_sync: %s already restored (or tried) into %s",
                newest.backup_name,
                standby.name,
            )
            continue
        request = RestoreRequest(newest.backup_name, standby.resource_id)
        try:
            started.append(start_restore(runtime, request, Trigger.STANDBY))
        except errors.ProductError as exc:
            log.warning(
                "standby_sync: restore of %s into %s refused: %s (%s)",
                newest.backup_name,
                standby.name,
                exc.message,
                exc.code,
            )
    return started
