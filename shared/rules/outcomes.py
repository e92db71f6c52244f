"""Outcome records: one structured log record per ended backup and restore, for
dashboards (docs/timers-and-signals.md, "Outcome records"). The schema lives here and
only here: the field names, what each holds, and how a record is built from the ended
operation. Emitted by :mod:`shared.jobs.outcomes` where an operation settles.

The record is ``OUTCOME <compact JSON of the fields, keys sorted>`` on the logger
``apim_backup.outcomes`` at INFO, and the same fields are passed as the log record's
``extra`` (flat keys), which become ``customDimensions`` (``Properties`` in
``AppTraces``) where the Functions host forwards them (with OpenTelemetry); the JSON in
the message is there for every pipeline, ``parse_json`` in KQL.
"""

from __future__ import annotations

import re
from typing import Any

from shared.rules.model import OperationKind, OperationRecord, Status

LOGGER_NAME = "apim_backup.outcomes"
PREFIX = "OUTCOME"

# Every field, always present (null when it does not apply), and what it holds.
FIELDS: dict[str, str] = {
    "kind": "backup or restore",
    "operationId": "the operation's id (GET /api/operations/{id})",
    "backupName": "the backup taken, or restored",
    "service": "the backup's service: the service backed up, or a restore's source",
    "target": "a restore's target service; null for a backup (it has none)",
    "trigger": "schedule, http, cli or standby",
    "status": "Succeeded or Failed",
    "startedAt": "when the operation was started (ISO 8601 UTC)",
    "completedAt": "when it was settled (ISO 8601 UTC)",
    "durationSeconds": "completedAt minus startedAt, in seconds (one decimal)",
    "sizeBytes": "a succeeded backup's blob size; null otherwise",
    "errorCode": "a failed operation's error code (below); null when it succeeded",
    "driftCount": "a succeeded restore's settings that differ from the backup's manifest; "
    "null for a backup, a failed restore, or when drift could not be computed",
}
FIELD_NAMES = frozenset(FIELDS)

_ARM_CODE = re.compile(r"^([A-Z][A-Za-z0-9]{2,63}): ")
# A failure's code when its message carries no ARM code: the product's own causes.
_KNOWN = (
    ("Timed out", "Timeout"),
    ("Abandoned", "Abandoned"),
    ("The recorded operation URL was rejected", "OperationUrlRejected"),
    ("No operation URL was recorded", "StartNotRecorded"),
    ("API Management reported success, but blob", "BackupBlobMissing"),
)


def error_code(error: str | None) -> str:
    """A stable code for a failure's message: the ARM error code it starts with
    (``BackupFailed: ...``), one of the product's own causes, or ``OperationFailed``."""
    text = (error or "").strip()
    for start, code in _KNOWN:
        if text.startswith(start):
            return code
    match = _ARM_CODE.match(text)
    return match.group(1) if match else "OperationFailed"


def outcome_fields(
    operation: OperationRecord, size_bytes: int | None = None, code: str | None = None
) -> dict[str, Any]:
    """The record of an ended operation. ``code``: the failure's code when the caller
    knows it (a refused start's error); otherwise it is read from the error message."""
    if operation.is_running or operation.completed_at is None:
        raise ValueError(f"operation {operation.operation_id} has not ended")
    failed = operation.status is Status.FAILED
    restore = operation.kind is OperationKind.RESTORE
    drift = operation.drift if restore and not failed else None
    fields: dict[str, Any] = {
        "kind": operation.kind.value,
        "operationId": operation.operation_id,
        "backupName": operation.backup_name,
        "service": operation.source_service if restore else operation.service,
        "target": operation.service if restore else None,
        "trigger": operation.trigger.value,
        "status": operation.status.value,
        "startedAt": operation.created_at,
        "completedAt": operation.completed_at,
        "durationSeconds": operation.duration_seconds,
        "sizeBytes": None if failed or restore else size_bytes,
        "errorCode": (code or error_code(operation.error)) if failed else None,
        "driftCount": None if drift is None else len(drift),
    }
    assert set(fields) == FIELD_NAMES  # the schema above is the only one
    return fields
