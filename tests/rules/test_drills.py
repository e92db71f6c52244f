"""Restore drills without a server, exactly: which operation is a drill, the pair's last
drill once one is counted, its table row and API form, and the warning rule."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.rules.drills import Drill, drill_warning, is_drill, pair_key
from shared.rules.model import OperationKind, OperationRecord, Status, Trigger

STARTED = datetime(2026, 7, 10, 2, 30, tzinfo=UTC)
ENDED = STARTED + timedelta(seconds=93, milliseconds=460)
BACKUP = "contoso-apim-20260710T020000Z.apimbackup"
DRIFT: tuple[dict[str, str | None], ...] = (
    {"kind": "api", "name": "a", "change": "added"},
    {"kind": "api", "name": "b"},
)


def restore(status: Status = Status.SUCCEEDED, **changes: object) -> OperationRecord:
    operation = OperationRecord(
        operation_id="op-1",
        kind=OperationKind.RESTORE,
        service="contoso-standby",
        service_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/contoso-standby",
        backup_name=BACKUP,
        status=status,
        trigger=Trigger.STANDBY,
        created_at=STARTED,
        source_service="contoso-apim",
        completed_at=ENDED,
        drift=DRIFT if status is Status.SUCCEEDED else None,
    )
    return replace(operation, **changes)  # type: ignore[arg-type]


def drill(**changes: object) -> Drill:
    last = Drill(
        source="contoso-apim",
        target="contoso-standby",
        backup_name=BACKUP,
        operation_id="op-1",
        started_at=STARTED,
        completed_at=ENDED,
        status=Status.SUCCEEDED,
        drift_count=2,
        last_succeeded_at=ENDED,
    )
    return replace(last, **changes)  # type: ignore[arg-type]


def test_the_pair_key_is_source_arrow_standby():
    assert pair_key("contoso-apim", "contoso-standby") == "contoso-apim=>contoso-standby"
    assert Drill.PARTITION == "drill"


def test_a_drill_is_an_ended_standby_sync_restore():
    assert is_drill(restore()) is True
    assert is_drill(restore(Status.FAILED)) is True
    assert is_drill(restore(kind=OperationKind.BACKUP)) is False
    assert is_drill(restore(trigger=Trigger.HTTP)) is False
    assert is_drill(restore(Status.RUNNING)) is False
    assert is_drill(restore(Status.FAILED, completed_at=None)) is False


def test_a_succeeded_drill_is_its_own_last_success_with_its_drift_counted():
    assert Drill.of(restore(), None) == drill()
    older = drill(last_succeeded_at=STARTED - timedelta(days=1))
    assert Drill.of(restore(), older) == drill()
    assert Drill.of(restore(drift=()), None) == drill(drift_count=0)
    assert Drill.of(restore(drift=None), None) == drill(drift_count=None)


def test_a_failed_drill_keeps_the_last_success_before_it_and_counts_no_drift():
    earlier = STARTED - timedelta(days=2)
    failed = restore(Status.FAILED, drift=DRIFT)  # a drift on a failed restore is not counted
    assert Drill.of(failed, drill(last_succeeded_at=earlier)) == drill(
        status=Status.FAILED, drift_count=None, last_succeeded_at=earlier
    )
    assert Drill.of(failed, None) == drill(
        status=Status.FAILED, drift_count=None, last_succeeded_at=None
    )
    never = drill(status=Status.FAILED, drift_count=None, last_succeeded_at=None)
    assert Drill.of(failed, never).last_succeeded_at is None


@pytest.mark.parametrize(
    "operation",
    [
        restore(kind=OperationKind.BACKUP),
        restore(trigger=Trigger.HTTP),
        restore(Status.RUNNING),
        restore(Status.FAILED, completed_at=None),
    ],
)
def test_only_an_ended_drill_is_counted(operation: OperationRecord):
    with pytest.raises(ValueError, match=f"^{re.escape('operation op-1 is not an ended drill')}$"):
        Drill.of(operation, drill())


def test_the_duration_is_in_seconds_to_a_tenth():
    assert drill().duration_seconds == 93.5
    assert (
        drill(completed_at=STARTED + timedelta(seconds=59, milliseconds=940)).duration_seconds
        == 59.9
    )


def test_the_row_has_every_field_and_only_known_counts():
    assert drill().to_entity() == {
        "PartitionKey": "drill",
        "RowKey": "contoso-apim=>contoso-standby",
        "Source": "contoso-apim",
        "Target": "contoso-standby",
        "BackupName": BACKUP,
        "OperationId": "op-1",
        "StartedAt": STARTED,
        "CompletedAt": ENDED,
        "Status": "Succeeded",
        "DriftCount": 2,
        "LastSucceededAt": ENDED,
    }
    bare = drill(status=Status.FAILED, drift_count=None, last_succeeded_at=None).to_entity()
    assert "DriftCount" not in bare and "LastSucceededAt" not in bare
    assert bare["Status"] == "Failed"
    assert drill(drift_count=0).to_entity()["DriftCount"] == 0


def test_a_row_reads_back_as_the_drill_it_was():
    for last in (
        drill(),
        drill(drift_count=0),
        drill(status=Status.FAILED, drift_count=None, last_succeeded_at=None),
    ):
        assert Drill.from_entity(last.to_entity()) == last


def test_a_row_from_before_the_backup_and_operation_were_kept_reads_them_empty():
    entity = {
        "Source": "contoso-apim",
        "Target": "contoso-standby",
        "StartedAt": STARTED,
        "CompletedAt": ENDED,
        "Status": "Failed",
        "DriftCount": "3",
    }
    assert Drill.from_entity(entity) == Drill(
        source="contoso-apim",
        target="contoso-standby",
        backup_name="",
        operation_id="",
        started_at=STARTED,
        completed_at=ENDED,
        status=Status.FAILED,
        drift_count=3,
        last_succeeded_at=None,
    )


def test_the_api_form():
    assert drill().to_api() == {
        "backupName": BACKUP,
        "operationId": "op-1",
        "startedAt": "2026-07-10T02:30:00Z",
        "completedAt": "2026-07-10T02:31:33.460000Z",
        "durationSeconds": 93.5,
        "driftCount": 2,
        "status": "Succeeded",
    }
    failed = drill(status=Status.FAILED, drift_count=None, last_succeeded_at=None)
    assert failed.to_api()["driftCount"] is None
    assert failed.to_api()["status"] == "Failed"


# The warning -------------------------------------------------------------------------------

WEEK = 7


def test_a_success_within_the_days_is_no_warning_and_one_older_is():
    last = drill()
    assert drill_warning(ENDED + timedelta(days=WEEK), last, None, WEEK) is None
    assert drill_warning(ENDED, last, None, WEEK) is None
    late = ENDED + timedelta(days=WEEK, microseconds=1)
    assert drill_warning(late, last, None, WEEK) == (
        "no restore drill has succeeded since 2026-07-10T02:31:33.460000Z"
    )
    # The days count from the last success, not from when the pair was first seen.
    assert drill_warning(late, last, late, WEEK) == (
        "no restore drill has succeeded since 2026-07-10T02:31:33.460000Z"
    )
    assert drill_warning(late, last, late, WEEK + 1) is None


def test_a_pair_never_drilled_gets_the_days_from_when_it_was_first_seen():
    seen = STARTED
    assert drill_warning(seen + timedelta(days=WEEK), None, seen, WEEK) is None
    late = seen + timedelta(days=WEEK, microseconds=1)
    assert drill_warning(late, None, seen, WEEK) == (
        "no restore drill has succeeded in the last 7 days"
    )
    assert drill_warning(late, None, seen, 3) == "no restore drill has succeeded in the last 3 days"
    assert drill_warning(late, None, None, WEEK) is None  # not seen yet: it appears now


def test_a_pair_whose_drills_all_failed_is_judged_as_never_drilled():
    failed = drill(status=Status.FAILED, drift_count=None, last_succeeded_at=None)
    seen = STARTED
    assert drill_warning(seen + timedelta(days=WEEK), failed, seen, WEEK) is None
    late = seen + timedelta(days=WEEK, seconds=1)
    assert drill_warning(late, failed, seen, WEEK) == (
        "no restore drill has succeeded in the last 7 days"
    )
