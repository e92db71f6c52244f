"""Signals: one log record per thing an operator must hear about, with a stable name.

Nobody reads ``/api/health`` of a backup that runs unattended, so every failure that
matters is also written as a structured log record that an alert rule can match. In
Azure the Functions host sends these records to Application Insights; in a
workspace-based resource each is a row of ``AppTraces`` whose ``Message`` starts with
``SIGNAL <Name> ``. The format is part of the product's contract (alert rules in infra/
match it): ``SIGNAL <Name> <compact JSON of the fields, keys sorted>``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from enum import StrEnum

LOGGER_NAME = "apim_backup.signals"
log = logging.getLogger(LOGGER_NAME)


class Signal(StrEnum):
    BACKUP_FAILED = "BackupFailed"  # service, backupName, operationId, error
    RESTORE_FAILED = "RestoreFailed"  # service, backupName, operationId, error, sourceService
    SCHEDULE_OWED = "ScheduleOwed"  # service, since, attempts, lastError (owed past its grace)
    RPO_BREACHED = "RpoBreached"  # service, newestBackup, ageHours, rpoHours
    OPERATION_URL_REJECTED = "OperationUrlRejected"  # service, operationId, reason
    HOUSEKEEPING_STEP_FAILED = "HousekeepingStepFailed"  # step, error (the exception's class)
    # service, since, count, ageMinutes, rpoMinutes (a configuration change unprotected
    # longer than CHANGE_RPO_MINUTES; docs/change-backups.md)
    CHANGE_UNPROTECTED = "ChangeUnprotected"


FIELDS: dict[Signal, frozenset[str]] = {
    Signal.BACKUP_FAILED: frozenset({"service", "backupName", "operationId", "error"}),
    Signal.RESTORE_FAILED: frozenset(
        {"service", "backupName", "operationId", "error", "sourceService"}
    ),
    Signal.SCHEDULE_OWED: frozenset({"service", "since", "attempts", "lastError"}),
    Signal.RPO_BREACHED: frozenset({"service", "newestBackup", "ageHours", "rpoHours"}),
    Signal.OPERATION_URL_REJECTED: frozenset({"service", "operationId", "reason"}),
    Signal.HOUSEKEEPING_STEP_FAILED: frozenset({"step", "error"}),
    Signal.CHANGE_UNPROTECTED: frozenset({"service", "since", "count", "ageMinutes", "rpoMinutes"}),
}

# Signals about the app as a whole, not one service: they carry no ``service`` (an alert
# split by service fires once for them, with the dimension empty). Every other has one.
APP_WIDE: frozenset[Signal] = frozenset({Signal.HOUSEKEEPING_STEP_FAILED})

# A debt is a warning (housekeeping is on it); every other signal is an error.
_LEVELS = {Signal.SCHEDULE_OWED: logging.WARNING}


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def format_signal(name: Signal, fields: dict[str, object]) -> str:
    payload = json.dumps(
        {key: _plain(value) for key, value in fields.items()},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return f"SIGNAL {name.value} {payload}"


def emit(name: Signal | str, **fields: object) -> None:
    """Log one signal. The fields must be exactly the documented ones for ``name``: a
    missing or extra field would silently break an alert rule, so it is a bug here."""
    name = Signal(name)
    expected = FIELDS[name]
    if set(fields) != expected:
        raise ValueError(f"{name.value} takes {sorted(expected)}, got {sorted(fields)}")
    log.log(_LEVELS.get(name, logging.ERROR), "%s", format_signal(name, fields))
