"""The retention policy and the pure half of a pruning pass (reconcile), property-based."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.rules.model import BackupRecord, Status, Trigger
from shared.rules.naming import backup_name
from shared.rules.reconcile import PrunePlan, reconcile
from shared.rules.retention import RetentionPlan, plan_retention

NOW = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
CONTAINER = "apim-backups"
ACCOUNT = "devstoreaccount1"
SERVICES = ("contoso-apim", "fabrikam", "tailspin")


def record(
    service: str,
    age: timedelta,
    status: Status = Status.SUCCEEDED,
    container: str = CONTAINER,
    account: str = ACCOUNT,
) -> BackupRecord:
    created = (NOW - age).replace(microsecond=0)
    return BackupRecord(
        service=service,
        backup_name=backup_name(service, created),
        service_id=f"/subscriptions/x/resourceGroups/rg/providers/Microsoft.ApiManagement/service/{service}",
        storage_account=account,
        container=container,
        status=status,
        trigger=Trigger.SCHEDULE,
        created_at=created,
        sku="Developer",
        pruned_at=NOW - timedelta(days=40) if status is Status.PRUNED else None,
    )


# Ages from an hour in the future (clock skew) to 45 days back, on whole seconds.
_ages = st.integers(min_value=-3600, max_value=45 * 86400).map(lambda s: timedelta(seconds=s))
_rows = st.lists(
    st.builds(record, st.sampled_from(SERVICES), _ages, st.sampled_from(list(Status))),
    max_size=40,
    unique_by=lambda r: r.backup_name,
)
_retention = st.integers(min_value=1, max_value=30)
_min_keep = st.integers(min_value=0, max_value=5)


def restorable_left(rows: list[BackupRecord], plan: RetentionPlan, service: str) -> int:
    pruned = {d.record.backup_name for d in plan.prune}
    return sum(
        1
        for r in rows
        if r.service == service and r.is_restorable(NOW) and r.backup_name not in pruned
    )


# ------------------------------------------------------------------- policy properties


@given(_rows, _retention, _min_keep)
def test_plan_partitions_the_input(rows, retention, min_keep):
    plan = plan_retention(rows, NOW, retention, min_keep)
    seen = Counter(d.record.backup_name for d in (*plan.prune, *plan.keep))
    assert seen == Counter(r.backup_name for r in rows)
    assert all(d.reason for d in (*plan.prune, *plan.keep))


@given(_rows, _retention, _min_keep)
def test_running_and_pruned_rows_are_never_pruned(rows, retention, min_keep):
    plan = plan_retention(rows, NOW, retention, min_keep)
    assert all(d.record.status in (Status.SUCCEEDED, Status.FAILED) for d in plan.prune)


@given(_rows, _retention, _min_keep)
def test_each_service_keeps_min_keep_restorable(rows, retention, min_keep):
    plan = plan_retention(rows, NOW, retention, min_keep)
    for service in SERVICES:
        before = sum(1 for r in rows if r.service == service and r.is_restorable(NOW))
        assert restorable_left(rows, plan, service) >= min(min_keep, before)


@given(_rows, _retention, _min_keep)
def test_the_kept_restorable_ones_are_the_newest(rows, retention, min_keep):
    plan = plan_retention(rows, NOW, retention, min_keep)
    pruned = {d.record.backup_name for d in plan.prune}
    for service in SERVICES:
        restorable = sorted(
            (r for r in rows if r.service == service and r.is_restorable(NOW)),
            key=lambda r: r.created_at,
            reverse=True,
        )
        assert not pruned & {r.backup_name for r in restorable[:min_keep]}


@given(_rows, _retention, _min_keep)
def test_nothing_restorable_within_retention_is_pruned(rows, retention, min_keep):
    plan = plan_retention(rows, NOW, retention, min_keep)
    for d in plan.prune:
        r = d.record
        assert not (r.is_restorable(NOW) and NOW - r.created_at <= timedelta(days=retention))


@given(_rows, _retention, _min_keep)
def test_every_expired_succeeded_or_failed_is_pruned(rows, retention, min_keep):
    plan = plan_retention(rows, NOW, retention, min_keep)
    pruned = {d.record.backup_name for d in plan.prune}
    for r in rows:
        if r.status in (Status.SUCCEEDED, Status.FAILED) and r.is_expired(NOW):
            assert r.backup_name in pruned


@given(_rows, _retention, _min_keep)
def test_plan_does_not_depend_on_row_order(rows, retention, min_keep):
    forward = plan_retention(rows, NOW, retention, min_keep)
    backward = plan_retention(list(reversed(rows)), NOW, retention, min_keep)
    assert {d.record.backup_name for d in forward.prune} == {
        d.record.backup_name for d in backward.prune
    }


# ------------------------------------------------------------------- policy examples


def test_expired_and_old_go_newest_restorable_stays():
    rows = [
        record("contoso-apim", timedelta(days=31)),  # expired
        record("contoso-apim", timedelta(days=20)),  # older than 14 days
        record("contoso-apim", timedelta(days=16)),  # older, but the newest restorable
    ]
    plan = plan_retention(rows, NOW, retention_days=14, min_keep=1)
    reasons = {d.record.backup_name: d.reason for d in (*plan.prune, *plan.keep)}
    assert [d.record for d in plan.prune] == rows[:2]
    assert reasons[rows[0].backup_name] == "expired 2026-10-31"
    assert reasons[rows[1].backup_name] == "older than 14 days"
    assert reasons[rows[2].backup_name] == (
        "kept: one of the newest 1 restorable backups of contoso-apim"
    )


def test_min_keep_never_protects_an_expired_backup():
    rows = [record("fabrikam", timedelta(days=35)), record("fabrikam", timedelta(days=31))]
    plan = plan_retention(rows, NOW, retention_days=30, min_keep=3)
    assert len(plan.prune) == 2
    assert plan.keep == ()


def test_running_failed_and_pruned_rows():
    running = record("tailspin", timedelta(days=40), Status.RUNNING)
    young_failure = record("tailspin", timedelta(days=2), Status.FAILED)
    old_failure = record("tailspin", timedelta(days=20), Status.FAILED)
    pruned = record("tailspin", timedelta(days=50), Status.PRUNED)
    plan = plan_retention([running, young_failure, old_failure, pruned], NOW, 14, 1)
    assert [d.record for d in plan.prune] == [old_failure]
    assert plan.prune[0].reason == "failed, older than 14 days"
    kept = {d.record.backup_name: d.reason for d in plan.keep}
    assert kept[running.backup_name] == "running"
    assert kept[pruned.backup_name].startswith("already pruned")


def test_min_keep_zero_prunes_every_old_backup():
    rows = [record("contoso-apim", timedelta(days=d)) for d in (10, 11, 12)]
    plan = plan_retention(rows, NOW, retention_days=7, min_keep=0)
    assert len(plan.prune) == 3


# ------------------------------------------------------------------- reconcile


def run_reconcile(
    rows: list[BackupRecord], blobs: set[str], now: datetime, retention: int, min_keep: int
) -> PrunePlan:
    return reconcile(
        rows,
        blobs,
        now=now,
        retention_days=retention,
        min_keep=min_keep,
        account_name=ACCOUNT,
        container_name=CONTAINER,
    )


def apply_blobs(plan: PrunePlan, blobs: set[str]) -> set[str]:
    """The container after the plan's blob step."""
    gone = {d.record.blob_name for d in (*plan.prune, *plan.stale)}
    gone |= {o.blob_name for o in plan.orphans if o.delete}
    return blobs - gone


def apply_rows(plan: PrunePlan, rows: list[BackupRecord]) -> list[BackupRecord]:
    """The ledger after the plan's row step."""
    status = {d.record.backup_name: Status.PRUNED for d in plan.prune}
    status |= {d.record.backup_name: Status.FAILED for d in plan.vanished}
    status |= {d.record.backup_name: Status.SUCCEEDED for d in plan.found}
    return [r.with_changes(status=status.get(r.backup_name, r.status)) for r in rows]


def assert_consistent(rows: list[BackupRecord], blobs: set[str]) -> None:
    for r in rows:
        if r.status is Status.SUCCEEDED:
            assert r.blob_name in blobs, f"Succeeded without its blob: {r.backup_name}"
        if r.status is Status.PRUNED:
            assert r.blob_name not in blobs, f"Pruned with a blob: {r.backup_name}"
        if r.status is Status.FAILED and not r.operation_url:
            assert r.blob_name not in blobs, f"Failed from evidence, blob there: {r.backup_name}"


_blob_world = _rows.flatmap(
    lambda rows: st.tuples(
        st.just(rows),
        st.sets(st.sampled_from([r.blob_name for r in rows])) if rows else st.just(set[str]()),
    )
)


@given(_blob_world, _retention, _min_keep)
def test_reconcile_partitions_the_ledger_and_leaves_it_consistent(world, retention, min_keep):
    rows, blobs = world
    plan = run_reconcile(rows, blobs, NOW, retention, min_keep)
    every = (*plan.prune, *plan.keep, *plan.vanished, *plan.stale, *plan.found)
    assert Counter(d.record.backup_name for d in every) == Counter(r.backup_name for r in rows)
    assert all(d.record.status is not Status.RUNNING for d in (*plan.prune, *plan.vanished))
    assert_consistent(
        [r for r in apply_rows(plan, rows) if r.status is not Status.RUNNING],
        apply_blobs(plan, blobs),
    )


@given(_blob_world, _retention, _min_keep)
def test_min_keep_counts_only_blobs_that_exist(world, retention, min_keep):
    rows, blobs = world
    plan = run_reconcile(rows, blobs, NOW, retention, min_keep)
    after_rows, after_blobs = apply_rows(plan, rows), apply_blobs(plan, blobs)
    for service in SERVICES:
        real_before = sum(
            1
            for r in rows
            if r.service == service and r.is_restorable(NOW) and r.blob_name in blobs
        )
        real_after = sum(
            1
            for r in after_rows
            if r.service == service and r.is_restorable(NOW) and r.blob_name in after_blobs
        )
        assert real_after >= min(min_keep, real_before)


@settings(max_examples=200)
@given(_blob_world, _retention, _min_keep, st.integers(min_value=0, max_value=40 * 86400))
def test_a_crash_after_the_blob_step_is_repaired_by_the_next_pass(
    world, retention, min_keep, later
):
    rows, blobs = world
    first = run_reconcile(rows, blobs, NOW, retention, min_keep)
    blobs_after_crash = apply_blobs(first, blobs)  # rows never updated

    now2 = NOW + timedelta(seconds=later)
    second = run_reconcile(rows, blobs_after_crash, now2, retention, min_keep)
    # Whatever the first pass pruned is recognised as pruning, not as a vanished blob.
    first_pruned = {d.record.backup_name for d in first.prune}
    assert first_pruned <= {d.record.backup_name for d in second.prune}
    assert_consistent(
        [r for r in apply_rows(second, rows) if r.status is not Status.RUNNING],
        apply_blobs(second, blobs_after_crash),
    )


def test_vanished_blob_marks_failed_and_min_keep_moves_to_an_existing_one():
    old = record("contoso-apim", timedelta(days=20))
    new = record("contoso-apim", timedelta(days=1))
    plan = run_reconcile([old, new], {old.blob_name}, NOW, retention=14, min_keep=1)
    assert [d.record for d in plan.vanished] == [new]
    assert plan.prune == ()  # old is now the newest restorable backup that exists
    assert [d.record for d in plan.keep] == [old]


def test_orphans_and_foreign_names():
    young = backup_name("contoso-apim", NOW - timedelta(days=3))
    old = backup_name("contoso-apim", NOW - timedelta(days=31))
    other_container = record("contoso-apim", timedelta(days=40), container="elsewhere")
    plan = run_reconcile(
        [other_container], {young, old, "notes.txt", "contoso-apim.apimbackup"}, NOW, 30, 1
    )
    assert {(o.blob_name, o.delete) for o in plan.orphans} == {(young, False), (old, True)}
    assert [d.record for d in plan.keep] == [other_container]
    assert plan.vanished == ()  # a row of another container is not judged by this listing


def test_rows_of_another_storage_account_are_kept_not_failed():
    """BACKUP_STORAGE_ACCOUNT changed, the container's name kept: the old backups are not
    in this listing and are not judged by it (issue 17, defect 4). Case is ignored, and a
    row written before the column existed counts as ours."""
    old = [record("contoso-apim", timedelta(days=d), account="oldaccount") for d in (1, 20, 40)]
    ours_upper = record("contoso-apim", timedelta(days=2), account=ACCOUNT.upper())
    no_column = record("contoso-apim", timedelta(days=3), account="")
    plan = run_reconcile([*old, ours_upper, no_column], set(), NOW, retention=14, min_keep=1)
    assert {d.record.backup_name for d in plan.vanished} == {
        ours_upper.backup_name,
        no_column.backup_name,
    }
    kept = {d.record.backup_name: d.reason for d in plan.keep}
    assert set(kept) == {r.backup_name for r in old}
    assert all(
        why == f"blob is in storage account 'oldaccount', not '{ACCOUNT}'" for why in kept.values()
    )
    assert plan.prune == ()  # not even the 40-day-old one: another account's blob
