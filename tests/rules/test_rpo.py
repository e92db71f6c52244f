"""The RPO verdict, and a service's quiet first days (issue 20 item 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shared.rules.model import BackupRecord, Status, Trigger
from shared.rules.naming import backup_name
from shared.rules.rpo import RpoState, RpoVerdict, judge_rpo

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
RPO = timedelta(hours=26)


def row(hours_ago: float, status: Status) -> BackupRecord:
    created = NOW - timedelta(hours=hours_ago)
    return BackupRecord(
        service="contoso-apim",
        backup_name=backup_name("contoso-apim", created),
        service_id="/subscriptions/x/resourceGroups/rg/providers/Microsoft.ApiManagement/service/contoso-apim",
        storage_account="devstoreaccount1",
        container="apim-backups",
        status=status,
        trigger=Trigger.SCHEDULE,
        created_at=created,
        sku="Developer",
    )


def test_a_recent_backup_is_healthy_and_an_old_one_breached():
    fresh = judge_rpo(NOW, [row(2, Status.SUCCEEDED)], None, RPO)
    assert fresh.state is RpoState.HEALTHY and fresh.age_hours == 2.0
    old = judge_rpo(NOW, [row(27, Status.SUCCEEDED)], NOW - timedelta(days=90), RPO)
    assert old.state is RpoState.BREACHED and old.age_hours == 27.0


def test_a_backup_exactly_rpo_hours_old_is_still_healthy():
    """The boundary as docs/reliability.md states it: healthy while no older than
    RPO_HOURS, breached a moment after; the verdict names the backup and its age."""
    newest = row(26, Status.SUCCEEDED)
    at = judge_rpo(NOW, [newest], None, RPO)
    assert at == RpoVerdict(RpoState.HEALTHY, newest, RPO)
    assert at.age_hours == 26.0
    later = NOW + timedelta(microseconds=1)
    assert judge_rpo(later, [newest], None, RPO) == RpoVerdict(
        RpoState.BREACHED, newest, RPO + timedelta(microseconds=1)
    )


def test_no_backup_yet_is_pending_until_rpo_hours_after_first_appearance():
    seen = NOW - timedelta(minutes=5)
    running = [row(0.05, Status.RUNNING)]
    pending = judge_rpo(NOW, running, seen, RPO)
    assert pending.state is RpoState.PENDING
    assert pending.first_backup_due == seen + RPO and pending.newest is None
    late = judge_rpo(seen + RPO, running, seen, RPO)
    assert late.state is RpoState.BREACHED


def test_never_seen_before_is_pending_from_now():
    verdict = judge_rpo(NOW, [], None, RPO)
    assert verdict.state is RpoState.PENDING and verdict.first_backup_due == NOW + RPO


def test_a_service_that_never_gets_a_backup_breaches_in_time():
    seen = NOW - RPO - timedelta(seconds=1)
    assert judge_rpo(NOW, [], seen, RPO).state is RpoState.BREACHED
    failed = [row(1, Status.FAILED), row(20, Status.FAILED)]
    assert judge_rpo(NOW, failed, seen, RPO).state is RpoState.BREACHED


def test_an_old_ledger_row_outranks_a_late_mark():
    """A mark written late (or lost and rewritten) cannot hide rows older than it."""
    verdict = judge_rpo(NOW, [row(27, Status.FAILED)], NOW - timedelta(minutes=1), RPO)
    assert verdict.state is RpoState.BREACHED


def test_a_service_that_had_backups_is_never_pending_again():
    """Its backups expired or were pruned: not its first days, a breach at once."""
    for status in (Status.SUCCEEDED, Status.PRUNED):
        gone = row(24 * 31, status)  # older than a backup's 30-day lifetime
        verdict = judge_rpo(NOW, [gone], NOW - timedelta(minutes=1), RPO)
        assert verdict.state is RpoState.BREACHED, status


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=24 * 29),
            st.sampled_from([Status.RUNNING, Status.FAILED]),
        ),
        max_size=5,
    ),
    st.floats(min_value=0, max_value=24 * 60),
)
def test_pending_never_lasts_past_rpo_hours_from_the_earliest_evidence(rows, seen_hours_ago):
    records = [row(h, s) for h, s in rows]
    seen = NOW - timedelta(hours=seen_hours_ago)
    verdict = judge_rpo(NOW, records, seen, RPO)
    earliest = min([seen, *(r.created_at for r in records)])
    assert (verdict.state is RpoState.PENDING) == (earliest + RPO > NOW)
    assert verdict.state is not RpoState.HEALTHY
