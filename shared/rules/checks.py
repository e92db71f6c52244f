"""Decisions as plain functions: which services and backups an operation may use, and
what a poll means. No SDK here; every rule is testable without a server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.rules import errors
from shared.rules.model import BackupRecord, Status
from shared.rules.naming import ServiceId, find_service
from shared.rules.service import BACKUP_TIERS, PollResult, PollState, ServiceInfo


def resolve_service(services: Sequence[ServiceId], ref: str | None) -> ServiceId:
    """The configured service (APIM_SERVICES) a request names; the only one when it names
    none."""
    if ref is None or not ref.strip():
        if len(services) == 1:
            return services[0]
        names = ", ".join(s.name for s in services)
        raise errors.BadRequest(
            f"'service' is required: more than one service is configured ({names})"
        )
    service = find_service(services, ref)
    if service is None:
        raise errors.ServiceNotConfigured(f"Service '{ref[:200]}' is not in APIM_SERVICES")
    return service


def require_backup_tier(sku: str, service: str) -> None:
    if sku not in BACKUP_TIERS:
        raise errors.UnsupportedSku(
            f"{service} is on the {sku} tier: API Management offers backup and restore only on "
            "Developer, Basic, Standard and Premium"
        )


def require_no_workspace_gateways(info: ServiceInfo, service: str) -> None:
    if info.has_workspace_gateways:
        raise errors.WorkspaceGatewaysPresent(
            f"{service} has workspace gateways: API Management does not support backup or "
            "restore of such a service"
        )


def require_no_cors(cors_rules: int | None, account: str) -> None:
    """``None``: the rules could not be read; APIM is then left to fail on its own."""
    if cors_rules:
        raise errors.CorsEnabled(
            f"The Blob service of storage account {account} has {cors_rules} CORS rule(s): "
            "API Management's backup fails while CORS is enabled; remove the rules"
        )


# Provisioning states in which APIM is itself in the middle of a management operation.
BUSY_STATES = frozenset({"updating", "activating", "terminating"})


def require_idle(info: ServiceInfo, service: str) -> None:
    """Refuse only while APIM is busy: a service left Failed by a bad update is exactly
    what one restores during an incident, and APIM decides about it, not us."""
    if info.provisioning_state.lower() in BUSY_STATES:
        raise errors.OperationInProgress(
            f"{service} is {info.provisioning_state}: another management operation is running on it"
        )


def check_backup_start(
    info: ServiceInfo, cors_rules: int | None, service: str, account: str
) -> None:
    """The pre-checks of a backup, in the order their refusals are reported."""
    require_backup_tier(info.sku, service)
    require_no_workspace_gateways(info, service)
    require_no_cors(cors_rules, account)


class Check(StrEnum):
    BACKUP_EXISTS = "backupExists"
    BACKUP_SUCCEEDED = "backupSucceeded"
    BACKUP_NOT_EXPIRED = "backupNotExpired"
    TARGET_ALLOWED = "targetAllowed"
    TARGET_TIER = "targetTierSupportsRestore"
    SKU_MATCH = "skuMatches"
    NO_WORKSPACE_GATEWAYS = "noWorkspaceGateways"
    NO_CORS = "noCors"
    BLOB_EXISTS = "blobExists"
    TARGET_IDLE = "targetIdle"


def require_backup_found(record: BackupRecord | None, name: str) -> BackupRecord:
    if record is None:
        raise errors.BackupNotFound(f"No backup named {name} in the ledger")
    return record


def require_succeeded(record: BackupRecord) -> None:
    if record.status is not Status.SUCCEEDED:
        raise errors.BackupNotSucceeded(
            f"Backup {record.backup_name} is {record.status.value}: only a Succeeded backup "
            "can be restored"
        )


def require_not_expired(record: BackupRecord, now: datetime) -> None:
    if record.is_expired(now):
        raise errors.BackupExpired(
            f"Backup {record.backup_name} expired at {record.expires_at:%Y-%m-%d %H:%M:%S} UTC: "
            "API Management cannot restore a backup older than 30 days "
            "(Cannot restore: backup expired)"
        )


def check_target_allowed(targets: Sequence[ServiceId], ref: str) -> ServiceId:
    """The restore target (RESTORE_TARGETS) a request names."""
    target = find_service(targets, ref)
    if target is None:
        raise errors.TargetNotAllowed(f"Service '{ref[:200]}' is not in RESTORE_TARGETS")
    return target


def check_sku_match(backup_sku: str, target_sku: str, target: str) -> None:
    if backup_sku != target_sku:
        raise errors.SkuMismatch(
            f"{target} is on the {target_sku} tier but the backup was taken on {backup_sku}: "
            "API Management restores only into the same tier"
        )


class Outcome(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    error: str | None = None


def judge_poll(result: PollResult, started: datetime, now: datetime, timeout: timedelta) -> Verdict:
    """What a single poll means for an operation started at ``started``."""
    if result.state is PollState.SUCCEEDED:
        return Verdict(Outcome.SUCCEEDED)
    if result.state is PollState.FAILED:
        return Verdict(Outcome.FAILED, result.error or "API Management reported a failure")
    if now - started > timeout:
        minutes = int(timeout.total_seconds() // 60)
        if result.refused:
            # Maybe not stuck at all: its status could not be read (a missing role?).
            return Verdict(
                Outcome.FAILED,
                f"Timed out after {minutes} minutes without a status: {result.refused}",
            )
        detail = f" (last poll: {result.error})" if result.error else ""
        return Verdict(
            Outcome.FAILED, f"Timed out: still not finished after {minutes} minutes{detail}"
        )
    return Verdict(Outcome.RUNNING)
