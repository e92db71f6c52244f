"""Outcome records' schema and values (issue 20 item 1): pure, from the ended operation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.rules.model import OperationKind, OperationRecord, Status, Trigger
from shared.rules.outcomes import FIELD_NAMES, error_code, outcome_fields

STARTED = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)


def ended(kind: OperationKind, status: Status, **changes: object) -> OperationRecord:
    operation = OperationRecord(
        operation_id="a" * 32,
        kind=kind,
        service="contoso-standby" if kind is OperationKind.RESTORE else "contoso-apim",
        service_id="/subscriptions/x/resourceGroups/rg/providers/Microsoft.ApiManagement/service/s",
        backup_name="contoso-apim-20261203T020000Z.apimbackup",
        status=status,
        trigger=Trigger.STANDBY if kind is OperationKind.RESTORE else Trigger.SCHEDULE,
        created_at=STARTED,
        completed_at=STARTED + timedelta(minutes=5, seconds=12, milliseconds=340),
        source_service="contoso-apim" if kind is OperationKind.RESTORE else "",
    )
    return operation.with_changes(**changes)


def test_a_succeeded_backup():
    fields = outcome_fields(ended(OperationKind.BACKUP, Status.SUCCEEDED), size_bytes=1589)
    assert set(fields) == FIELD_NAMES
    assert fields["durationSeconds"] == 312.3
    assert fields["service"] == "contoso-apim" and fields["target"] is None
    assert fields["sizeBytes"] == 1589 and fields["errorCode"] is None
    assert fields["driftCount"] is None and fields["trigger"] == "schedule"
    assert fields["status"] == "Succeeded" and fields["kind"] == "backup"


def test_a_succeeded_restore_counts_its_drift_and_names_source_and_target():
    drift = ({"setting": "a"}, {"setting": "b"}, {"setting": "c"})
    fields = outcome_fields(ended(OperationKind.RESTORE, Status.SUCCEEDED, drift=drift), 999)
    assert fields["service"] == "contoso-apim" and fields["target"] == "contoso-standby"
    assert fields["driftCount"] == 3 and fields["sizeBytes"] is None
    assert fields["trigger"] == "standby"
    uncomputed = outcome_fields(ended(OperationKind.RESTORE, Status.SUCCEEDED, drift=None))
    assert uncomputed["driftCount"] is None


def test_a_failed_operation_has_a_code_and_no_size():
    failed = ended(OperationKind.BACKUP, Status.FAILED, error="BackupFailed: Disk on fire")
    fields = outcome_fields(failed, size_bytes=10)
    assert fields["errorCode"] == "BackupFailed" and fields["sizeBytes"] is None
    assert outcome_fields(failed, code="UnsupportedSku")["errorCode"] == "UnsupportedSku"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("Timed out: still not finished after 60 minutes", "Timeout"),
        ("Timed out after 60 minutes without a status: 403", "Timeout"),
        ("Abandoned: the backup's operation was never recorded", "Abandoned"),
        ("The recorded operation URL was rejected: host", "OperationUrlRejected"),
        ("No operation URL was recorded for this start", "StartNotRecorded"),
        ("API Management reported success, but blob x is not in container y", "BackupBlobMissing"),
        ("RestoreFailed: Bad SKU", "RestoreFailed"),
        ("HTTP 500 from API Management", "OperationFailed"),
        ("", "OperationFailed"),
        (None, "OperationFailed"),
    ],
)
def test_error_codes(error, code):
    assert error_code(error) == code


def test_a_running_operation_has_no_outcome():
    with pytest.raises(ValueError, match="has not ended"):
        outcome_fields(ended(OperationKind.BACKUP, Status.RUNNING))


def test_only_a_succeeded_restore_reports_a_drift_count():
    """A drift list on a backup, or on a failed restore (a comparison from before it
    failed), is not this outcome's: driftCount stays empty."""
    drift = ({"setting": "a"},)
    backup = ended(OperationKind.BACKUP, Status.SUCCEEDED, drift=drift)
    failed_restore = ended(OperationKind.RESTORE, Status.FAILED, drift=drift, error="x")
    assert outcome_fields(backup)["driftCount"] is None
    assert outcome_fields(failed_restore)["driftCount"] is None
    assert (
        outcome_fields(ended(OperationKind.RESTORE, Status.SUCCEEDED, drift=drift))["driftCount"]
        == 1
    )
