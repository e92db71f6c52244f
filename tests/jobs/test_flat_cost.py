"""Issue 9: history out of the hot path, ledger history deletion, a fleet in parallel.

Request counts are taken at the transport (devstack.counting) against Azurite: they
are deterministic, so they are tests; timings are not, and live in bench/.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from devstack.counting import count_requests
from shared.adapters.ledger import BackupLedger, ensure_table
from shared.jobs import backups, health, history, housekeeping, schedule
from shared.rules.model import BackupRecord, OperationKind, OperationRecord, Status, Trigger
from shared.rules.naming import backup_name
from shared.runtime import Runtime
from shared.settings import Settings
from tests.product import Product

pytestmark = pytest.mark.stack

SERVICE = "contoso-apim"


def _row(product: Product, age: timedelta, status: Status, service: str = SERVICE) -> BackupRecord:
    created = (product.clock.now - age).replace(microsecond=0)
    return BackupRecord(
        service=service,
        backup_name=backup_name(service, created),
        service_id=product.stack.service_id(service),
        storage_account=product.runtime.settings.storage_account,
        container=product.runtime.settings.container,
        status=status,
        trigger=Trigger.SCHEDULE,
        created_at=created,
        sku="Developer",
        pruned_at=created + timedelta(days=30) if status is Status.PRUNED else None,
    )


def _tables(product: Product) -> tuple[TableClient, ContainerClient]:
    conn = product.stack.connection_string
    settings = product.runtime.settings
    ledger = TableClient.from_connection_string(conn, table_name=settings.ledger_table)
    container = ContainerClient.from_connection_string(conn, container_name=settings.container)
    return ledger, container


def _seed(
    product: Product, rows: list[BackupRecord], blobs: list[BackupRecord] | None = None
) -> None:
    """Rows in transactions of 100 per service; blobs for ``blobs``."""
    ledger, container = _tables(product)
    ensure_table(ledger)
    if not container.exists():
        container.create_container()
    by_service: dict[str, list[BackupRecord]] = {}
    for r in rows:
        by_service.setdefault(r.service, []).append(r)
    for service_rows in by_service.values():
        for start in range(0, len(service_rows), 100):
            chunk = service_rows[start : start + 100]
            ledger.submit_transaction([("upsert", r.to_entity()) for r in chunk])
    for r in blobs or []:
        container.upload_blob(r.blob_name, b"backup", overwrite=True)


def test_idle_tick_and_health_cost_the_same_whatever_the_history(product: Product):
    live = [_row(product, timedelta(hours=1), Status.SUCCEEDED, s) for s in product_services()]
    _seed(product, live, live)
    runtime = product.runtime
    housekeeping.run(runtime)  # warm: tables ensured, the day's history pass done

    def costs() -> tuple[int, int]:
        with count_requests() as tick:
            report = housekeeping.run(runtime)
        assert report.prune["pruned"] == [] and report.settled == []  # idle indeed
        with count_requests() as probe:
            assert health.report(runtime).healthy
        return tick.total, probe.total

    before = costs()
    # 2,500 rows of Pruned history, 31 to 390 days old: kept by LEDGER_HISTORY_DAYS.
    old = [
        _row(product, timedelta(days=31, hours=3 * i), Status.PRUNED, product_services()[i % 2])
        for i in range(2_500)
    ]
    _seed(product, old)
    after = costs()
    assert after == before
    # Running operations, Running rows, live rows, the container's listing, the owed rows,
    # the scheduled run's mark, the first-seen marks (one query), the pending changes, and
    # one 30-day key range per service for the RPO check.
    assert before[0] <= 8 + len(product_services())
    # Running ops, owed rows, pending changes, a range a service.
    assert before[1] == 3 + len(product_services())


def product_services() -> tuple[str, str]:
    return ("contoso-apim", "contoso-standby")


def test_history_older_than_ledger_history_days_is_deleted_and_nothing_else(product: Product):
    runtime = product.reconfigure(LEDGER_HISTORY_DAYS="60")
    day = timedelta(days=1)
    old_pruned = [
        _row(product, 61 * day + i * timedelta(minutes=1), Status.PRUNED) for i in range(150)
    ]
    old_failed = _row(product, 70 * day, Status.FAILED)
    old_failed_blob = _row(product, 71 * day, Status.FAILED)
    old_pruned_blob = _row(product, 72 * day, Status.PRUNED)  # a leftover blob: pruning's job
    old_succeeded = _row(product, 73 * day, Status.SUCCEEDED)  # never history
    young_pruned = _row(product, 59 * day, Status.PRUNED)
    young_failed = _row(product, 58 * day, Status.FAILED)
    other = _row(product, 80 * day, Status.PRUNED, "contoso-standby")
    rows = [
        *old_pruned,
        old_failed,
        old_failed_blob,
        old_pruned_blob,
        old_succeeded,
        young_pruned,
        young_failed,
        other,
    ]
    _seed(product, rows, [old_failed_blob, old_pruned_blob, old_succeeded])
    ops = {
        "oldended": _operation(product, 61 * day, Status.SUCCEEDED),
        "oldfailed": _operation(product, 90 * day, Status.FAILED),
        "oldrunning": _operation(product, 61 * day, Status.RUNNING),  # never while running
        "youngended": _operation(product, 59 * day, Status.SUCCEEDED),
    }
    for op in ops.values():
        runtime.operations.add(op)

    result = history.delete_old_rows(runtime)
    assert result is not None
    left_ops = {op.operation_id for op in runtime.operations.all()}
    assert left_ops == {ops["oldrunning"].operation_id, ops["youngended"].operation_id}
    assert sorted(result.operations_deleted) == sorted(
        ops[k].operation_id for k in ("oldended", "oldfailed")
    )

    ledger, _ = _tables(product)
    left = {e["RowKey"] for e in ledger.list_entities()}
    gone = {r.backup_name for r in [*old_pruned, old_failed, other]}
    assert left & gone == set()
    assert set(result.deleted) == gone
    assert {
        old_failed_blob.backup_name,
        old_pruned_blob.backup_name,
        old_succeeded.backup_name,
        young_pruned.backup_name,
        young_failed.backup_name,
    } <= left
    assert set(result.kept_with_blob) == {old_failed_blob.backup_name, old_pruned_blob.backup_name}
    assert result.errors == {}


def _operation(product: Product, age: timedelta, status: Status) -> OperationRecord:
    created = product.clock.now - age
    return OperationRecord(
        operation_id=uuid.uuid4().hex,
        kind=OperationKind.BACKUP,
        service=SERVICE,
        service_id=product.stack.service_id(SERVICE),
        backup_name=backup_name(SERVICE, created),
        status=status,
        trigger=Trigger.SCHEDULE,
        created_at=created,
        completed_at=None if status is Status.RUNNING else created + timedelta(minutes=9),
    )


def test_history_pass_runs_once_a_day(product: Product):
    runtime = product.runtime
    assert history.delete_old_rows(runtime) is not None
    with count_requests() as sent:
        assert history.delete_old_rows(runtime) is None
    assert sent.total == 0  # the same process: remembered
    fresh = Runtime(Settings.from_env(product.env), clock=product.clock)
    with count_requests() as sent:
        assert history.delete_old_rows(fresh) is None
    assert sent.total <= 2  # another instance: the marker row (and its table, once)
    product.clock.now += timedelta(days=1)
    assert history.delete_old_rows(runtime) is not None  # a new day


def test_parallel_tick_one_failure_costs_no_other_service_its_backup(product: Product):
    good = ("contoso-apim", "contoso-standby", "fabrikam-standby")
    services = (*good, "fabrikam-apim", "consumption-apim")  # APIM refuses; a precheck refuses
    runtime = product.reconfigure(
        APIM_SERVICES=",".join(product.stack.service_id(s) for s in services), MAX_PARALLEL="3"
    )
    with count_requests() as sent:
        started = schedule.scheduled_backups(runtime)
    assert sorted(s.backup.service for s in started) == sorted(good)
    rows = {r.service: r for r in runtime.ledger.records()}
    for service in good:
        assert rows[service].status is Status.RUNNING
    assert rows["fabrikam-apim"].status is Status.FAILED  # APIM said no: recorded
    assert "consumption-apim" not in rows  # refused before anything was written
    # The CORS rules (the blob service's properties): read once for the whole tick.
    assert sum("comp=properties" in path for path in sent.paths) == 1
    blob_port = product.stack.azurite.blob_port
    manifests = [p for p in sent.paths if p.endswith(".manifest.json?")]
    assert len(manifests) == len(good)  # one per started backup; none for a refused start
    assert sent.by_port[blob_port] >= 1 + len(manifests)


def test_housekeeping_polls_each_running_operation_once(product: Product):
    product.stack.control.set_duration(3600)
    services = ("contoso-apim", "contoso-standby", "fabrikam-standby")
    runtime = product.reconfigure(
        APIM_SERVICES=",".join(product.stack.service_id(s) for s in services), MAX_PARALLEL="2"
    )
    assert len(schedule.scheduled_backups(runtime)) == 3
    product.stack.control.clear_requests()
    report = housekeeping.run(runtime)
    assert report.settled == [] and report.stranded == []
    polls = product.arm_requests("GET", "/operationresults/")
    assert len(polls) == 3
    product.stack.control.advance_clock(3601)
    assert len(housekeeping.run(runtime).settled) == 3


def test_listing_unexpired_backups_reads_only_the_last_30_days(product: Product):
    live = _row(product, timedelta(days=2), Status.SUCCEEDED)
    expired = _row(product, timedelta(days=31), Status.SUCCEEDED)
    old = [_row(product, timedelta(days=32, hours=i), Status.PRUNED) for i in range(1_200)]
    _seed(product, [live, expired, *old])
    runtime = product.runtime
    runtime.ledger  # noqa: B018 - the table ensured before counting
    for service in ("contoso-apim", None):
        with count_requests() as sent:
            rows = backups.list_backups(runtime, service)
        assert [r.backup_name for r in rows] == [live.backup_name]
        assert sent.total == 1  # 1,202 rows in the ledger: one page, the unexpired ones
    everything = backups.list_backups(runtime, "contoso-apim", include_expired=True)
    assert len(everything) == 1_202


def test_a_history_row_changed_after_it_was_read_is_not_deleted(product: Product):
    rows = [_row(product, timedelta(days=500, minutes=i), Status.PRUNED) for i in range(5)]
    _seed(product, rows)
    ledger, _ = _tables(product)
    read = [BackupRecord.from_entity(ledger.get_entity(SERVICE, r.backup_name)) for r in rows]
    changed = read[2]
    ledger.update_entity({"PartitionKey": SERVICE, "RowKey": changed.backup_name, "Note": "x"})
    ledger.delete_entity(SERVICE, read[4].backup_name)  # gone meanwhile: counts as deleted

    result = BackupLedger(ledger).delete_rows(read)

    assert set(result.errors) == {changed.backup_name}
    assert set(result.deleted) == {r.backup_name for r in read} - {changed.backup_name}
    assert {e["RowKey"] for e in ledger.list_entities()} == {changed.backup_name}
