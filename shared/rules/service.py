"""What the product knows of an APIM service and its operations, as plain values: the
tiers that have backup, a service's state, where a backup goes, and what one status poll
said. The adapter (shared.adapters.apim) fills them in; the rules judge them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# Tiers on which APIM offers backup and restore (the seed document; v2 tiers and
# Consumption have neither).
BACKUP_TIERS = frozenset({"Developer", "Basic", "Standard", "Premium"})


class AccessType(StrEnum):
    """How APIM itself reaches the backup storage account."""

    SYSTEM_ASSIGNED = "SystemAssignedManagedIdentity"
    USER_ASSIGNED = "UserAssignedManagedIdentity"
    ACCESS_KEY = "AccessKey"


@dataclass(frozen=True)
class ServiceInfo:
    sku: str
    provisioning_state: str
    has_workspace_gateways: bool
    # The settings APIM's backup omits, already through the manifest's allow-list.
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StorageTarget:
    """Where APIM writes (or reads) a backup, and how it authenticates there."""

    account: str
    container: str
    access_type: AccessType
    client_id: str | None = None
    access_key: str | None = None

    def __repr__(self) -> str:  # the access key must never reach a log
        return f"StorageTarget({self.account}/{self.container}, {self.access_type.value})"


class PollState(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"  # Resource Manager could not be asked: try again later


@dataclass(frozen=True)
class PollResult:
    state: PollState
    error: str | None = None
    retry_after: int | None = None
    url_rejected: bool = False  # the recorded URL failed the checks of shared.rules.armurl
    # Resource Manager refused this status request (401/403): which refusal (status, ARM
    # code and message) and what to check. Still Unknown (a token glitch must not fail a
    # good backup), but a timeout after it says so instead of looking like a stuck job.
    refused: str | None = None


def arm_error_message(response_text: str, status: int) -> str:
    """The message of an ARM error body (``{"error": {"code", "message"}}``), or a fallback."""
    try:
        body = json.loads(response_text)
        error = body.get("error") or {}
        code, message = error.get("code"), error.get("message")
    except (ValueError, AttributeError):
        code = message = None
    if message:
        return f"{code}: {message}" if code else str(message)
    return f"HTTP {status} from API Management"
