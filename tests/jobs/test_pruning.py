"""Pruning and reconciliation against Azurite: real blobs, real ledger rows."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import BlobServiceClient, ContainerClient

from bench.prune import CountingTransport
from devstack.azurite import DEV_ACCOUNT, Azurite
from shared.adapters.blobs import BackupBlobs
from shared.adapters.ledger import BackupLedger
from shared.jobs.pruning import prune, run_pruning
from shared.rules.model import BackupRecord, Status, Trigger
from shared.rules.naming import backup_name
from shared.rules.prune_result import PruneResult
from shared.rules.reconcile import PrunePlan, reconcile

NOW = datetime.now(UTC).replace(microsecond=0)
SERVICE = "contoso-apim"
_ids = itertools.count()


@dataclass
class Store:
    azurite: Azurite
    ledger: TableClient
    backups: BackupBlobs  # the adapter over `container`
    container: ContainerClient
    table_name: str
    container_name: str

    def record(
        self, age: timedelta, status: Status = Status.SUCCEEDED, service: str = SERVICE
    ) -> BackupRecord:
        created = NOW - age
        return BackupRecord(
            service=service,
            backup_name=backup_name(service, created),
            service_id=f"/subscriptions/x/resourceGroups/rg/providers/Microsoft.ApiManagement/service/{service}",
            storage_account=DEV_ACCOUNT,
            container=self.container_name,
            status=status,
            trigger=Trigger.SCHEDULE,
            created_at=created,
            sku="Developer",
            error="APIM said no" if status is Status.FAILED else None,
            # APIM's own verdict came through its operation URL (without one, a Failed row
            # with its blob is found: test_a_backup_judged_failed_from_evidence_is_found).
            operation_url=(
                "https://management.azure.com/x/operationresults/1"
                if status is Status.FAILED
                else ""
            ),
        )

    def add(self, *records: BackupRecord, blob: bool = True) -> None:
        for r in records:
            self.ledger.create_entity(r.to_entity())
            if blob:
                self.container.upload_blob(r.blob_name, b"backup")

    def add_many(self, records: list[BackupRecord]) -> None:
        """Bulk seeding: rows in transactions of 100, blobs one by one."""
        for start in range(0, len(records), 100):
            chunk = records[start : start + 100]
            self.ledger.submit_transaction([("create", r.to_entity()) for r in chunk])
        for r in records:
            self.container.upload_blob(r.blob_name, b"backup")

    def blobs(self) -> set[str]:
        return set(self.container.list_blob_names())

    def row(self, record: BackupRecord) -> dict[str, Any]:
        return dict(self.ledger.get_entity(record.service, record.backup_name))

    def status(self, record: BackupRecord) -> str:
        return str(self.row(record)["Status"])

    def run(
        self, *, retention_days: int = 14, min_keep: int = 1, dry_run: bool = False
    ) -> PruneResult:
        return run_pruning(
            BackupLedger(self.ledger),
            self.backups,
            now=NOW,
            retention_days=retention_days,
            min_keep=min_keep,
            account_name=DEV_ACCOUNT,
            dry_run=dry_run,
        )

    def assert_consistent(self) -> None:
        """Ledger and container agree: no Succeeded row without its blob, no Pruned with one."""
        blobs = self.blobs()
        for r in BackupLedger(self.ledger).records():
            if r.status is Status.SUCCEEDED:
                assert r.blob_name in blobs, f"Succeeded row without its blob: {r.backup_name}"
            if r.status is Status.PRUNED:
                assert r.blob_name not in blobs, f"Pruned row with a blob: {r.backup_name}"


@pytest.fixture
def store(azurite: Azurite) -> Iterator[Store]:
    n = next(_ids)
    table_name, container_name = f"prune{n}x{id(azurite) % 10000}", f"prune-{n}"
    ledger = TableClient.from_connection_string(azurite.connection_string, table_name=table_name)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    backups = BackupBlobs(service, container_name)
    container = backups.container
    ledger.create_table()
    container.create_container()
    yield Store(azurite, ledger, backups, container, table_name, container_name)
    ledger.delete_table()
    container.delete_container()
    ledger.close()
    service.close()


def names(entries: Iterable[Any]) -> set[str]:
    return {e.backup_name for e in entries}


def test_expired_and_old_backups_go_min_keep_running_and_other_blobs_stay(store: Store):
    expired = store.record(timedelta(days=31))
    old = store.record(timedelta(days=20))
    newest_old = store.record(timedelta(days=16))  # the newest restorable one: MIN_KEEP=1
    running = store.record(timedelta(days=40), Status.RUNNING)
    other_service_young = store.record(timedelta(days=1), service="fabrikam")
    store.add(expired, old, newest_old, running, other_service_young)
    store.container.upload_blob("notes.txt", b"not a backup")
    store.container.upload_blob("contoso-apim-latest.apimbackup", b"not a backup name either")

    result = store.run(retention_days=14, min_keep=1)

    assert names(result.pruned) == {expired.backup_name, old.backup_name}
    assert store.blobs() == {
        newest_old.blob_name,
        running.blob_name,
        other_service_young.blob_name,
        "notes.txt",
        "contoso-apim-latest.apimbackup",
    }
    for r in (expired, old):
        row = store.row(r)
        assert row["Status"] == "Pruned"
        assert row["PrunedAt"] == NOW
    assert store.status(newest_old) == "Succeeded"
    assert store.status(running) == "Running"
    body = result.to_json()
    assert body["dryRun"] is False
    reasons = {item["backupName"]: item["reason"] for item in body["pruned"] + body["kept"]}
    assert reasons[expired.backup_name].startswith("expired ")
    assert reasons[old.backup_name] == "older than 14 days"
    assert "newest 1 restorable" in reasons[newest_old.backup_name]
    assert reasons[running.backup_name] == "running"
    assert body["orphans"] == []
    assert result.ok
    store.assert_consistent()


def test_a_failed_backups_leftover_blob_is_removed(store: Store):
    failed = store.record(timedelta(days=15), Status.FAILED)
    recent_failure = store.record(timedelta(days=2), Status.FAILED)
    store.add(failed, recent_failure)

    result = store.run(retention_days=14)

    assert names(result.pruned) == {failed.backup_name}
    assert store.blobs() == {recent_failure.blob_name}
    row = store.row(failed)
    assert row["Status"] == "Pruned"
    assert row["Error"] == "APIM said no"  # the failure stays on record
    assert store.status(recent_failure) == "Failed"


def test_a_backup_judged_failed_from_evidence_is_found(store: Store):
    """An unconfirmed start judged Failed before APIM wrote its blob (APIM showed no
    Updating): the blob is there now, so the row becomes Succeeded, with its size."""
    judged = store.record(timedelta(hours=2), Status.FAILED).with_changes(
        operation_url="", error="The start was not confirmed"
    )
    store.add(judged)

    dry = store.run(dry_run=True)
    assert names(dry.found) == {judged.backup_name} and store.status(judged) == "Failed"
    result = store.run()

    assert names(result.found) == {judged.backup_name}
    assert result.to_json()["found"][0]["status"] == "Failed"  # as the pass read it
    row = store.row(judged)
    assert row["Status"] == "Succeeded" and row["SizeBytes"].value == len(b"backup")
    assert row["Error"].startswith("Judged Failed from evidence, then found in container")
    assert row["Error"].endswith("Earlier: The start was not confirmed")
    assert store.blobs() == {judged.blob_name}
    assert names(store.run().found) == set()  # once


def test_orphans_old_deleted_young_reported(store: Store):
    old_orphan = backup_name(SERVICE, NOW - timedelta(days=31))
    young_orphan = backup_name(SERVICE, NOW - timedelta(days=29))
    for name in (old_orphan, young_orphan, "readme.md"):
        store.container.upload_blob(name, b"x")

    result = store.run()

    assert store.blobs() == {young_orphan, "readme.md"}
    orphans = {o["blobName"]: o for o in result.to_json()["orphans"]}
    assert set(orphans) == {old_orphan, young_orphan}
    assert orphans[old_orphan]["deleted"] is True
    assert orphans[young_orphan]["deleted"] is False


def test_a_succeeded_row_whose_blob_vanished_becomes_failed(store: Store):
    vanished = store.record(timedelta(days=3))
    kept = store.record(timedelta(days=5))
    store.add(vanished, blob=False)
    store.add(kept)

    result = store.run()

    row = store.row(vanished)
    assert row["Status"] == "Failed"
    assert "vanished" in row["Error"]
    assert vanished.blob_name in row["Error"]
    assert names(result.marked_failed) == {vanished.backup_name}
    assert store.status(kept) == "Succeeded"
    store.assert_consistent()


def plan_now(store: Store) -> PrunePlan:
    """The plan a pass would make now (14 days' retention, MIN_KEEP 1)."""
    return reconcile(
        BackupLedger(store.ledger).records(),
        store.backups.names(),
        now=NOW,
        retention_days=14,
        min_keep=1,
        account_name=DEV_ACCOUNT,
        container_name=store.container_name,
    )


def test_a_blob_already_gone_counts_as_deleted(store: Store):
    expired = store.record(timedelta(days=35))
    store.add(expired)
    plan = plan_now(store)
    store.container.delete_blob(expired.blob_name)  # gone between the listing and the delete

    result = prune(BackupLedger(store.ledger), store.backups, plan, NOW)

    assert result.ok
    assert names(result.pruned) == {expired.backup_name}
    assert store.status(expired) == "Pruned"


def test_a_blob_that_cannot_be_deleted_leaves_its_row_untouched(store: Store):
    leased, free = store.record(timedelta(days=35)), store.record(timedelta(days=34))
    store.add(leased, free)
    lease = store.container.get_blob_client(leased.blob_name).acquire_lease(lease_duration=-1)

    result = store.run()

    assert [e.name for e in result.errors] == [leased.backup_name]
    assert "412" in result.errors[0].error
    assert store.status(leased) == "Succeeded"
    assert leased.blob_name in store.blobs()
    assert store.status(free) == "Pruned"

    lease.release()
    assert names(store.run().pruned) == {leased.backup_name}
    store.assert_consistent()


def test_a_dry_run_changes_nothing(store: Store):
    old = store.record(timedelta(days=20))
    store.add(
        store.record(timedelta(days=31)), old, store.record(timedelta(days=15), Status.FAILED)
    )
    store.add(store.record(timedelta(days=2)), blob=False)  # would become Failed
    store.container.upload_blob(backup_name(SERVICE, NOW - timedelta(days=40)), b"orphan")

    def snapshot() -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        rows = [{**dict(e), "etag": e.metadata["etag"]} for e in store.ledger.list_entities()]
        blobs = [(b.name, b.etag) for b in store.container.list_blobs()]
        return sorted(rows, key=lambda r: r["RowKey"]), sorted(blobs)

    before = snapshot()
    result = store.run(dry_run=True)
    assert snapshot() == before
    body = result.to_json()
    assert body["dryRun"] is True
    # The expired one and the failure; `old` stays as the newest backup whose blob exists.
    assert len(body["pruned"]) == 2
    assert old.backup_name in {item["backupName"] for item in body["kept"]}
    assert len(body["markedFailed"]) == 1
    assert [o["deleted"] for o in body["orphans"]] == [True]


def test_more_than_one_batch_of_blobs_and_rows(store: Store):
    records = [store.record(timedelta(days=31, minutes=i)) for i in range(300)]
    store.add_many(records)
    table_transport, blob_transport = CountingTransport(), CountingTransport()
    ledger = TableClient.from_connection_string(
        store.azurite.connection_string, table_name=store.table_name, transport=table_transport
    )
    blobs = BlobServiceClient.from_connection_string(
        store.azurite.connection_string, transport=blob_transport
    )

    result = run_pruning(
        BackupLedger(ledger),
        BackupBlobs(blobs, store.container_name),
        now=NOW,
        retention_days=30,
        min_keep=1,
        account_name=DEV_ACCOUNT,
    )

    assert len(result.pruned) == 300
    assert result.ok
    assert store.blobs() == set()
    assert {r.status for r in BackupLedger(store.ledger).records()} == {Status.PRUNED}
    # One listing page + two batch deletes (256 + 44); one query page + three transactions.
    assert blob_transport.sent == 3
    assert table_transport.sent == 4


class CrashAfterBlobs(TableClient):
    """A ledger client whose first write fails: a crash between the blob and row steps."""

    def submit_transaction(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("crash injected before the ledger update")


def test_a_crash_between_blob_deletes_and_row_updates_is_repaired(store: Store):
    expired = [store.record(timedelta(days=31, hours=i)) for i in range(3)]
    keep = store.record(timedelta(days=1))
    store.add(*expired, keep)
    crashing = CrashAfterBlobs.from_connection_string(
        store.azurite.connection_string, table_name=store.table_name
    )

    with pytest.raises(RuntimeError, match="crash injected"):
        run_pruning(
            BackupLedger(crashing),
            store.backups,
            now=NOW,
            retention_days=14,
            min_keep=1,
            account_name=DEV_ACCOUNT,
        )
    # The crash left the ledger behind the container, as designed: rows say Succeeded.
    assert store.blobs() == {keep.blob_name}
    assert {store.status(r) for r in expired} == {"Succeeded"}

    result = store.run()

    assert names(result.pruned) == {r.backup_name for r in expired}
    assert result.marked_failed == []
    assert {store.status(r) for r in expired} == {"Pruned"}
    assert store.status(keep) == "Succeeded"
    store.assert_consistent()


def test_a_row_changed_meanwhile_is_not_clobbered(store: Store):
    changed, other = store.record(timedelta(days=33)), store.record(timedelta(days=32))
    store.add(changed, other)
    plan = plan_now(store)
    store.ledger.update_entity(
        {"PartitionKey": SERVICE, "RowKey": changed.backup_name, "SizeBytes": 42},
        mode=UpdateMode.MERGE,
    )

    result = prune(BackupLedger(store.ledger), store.backups, plan, NOW)

    assert [e.name for e in result.errors] == [changed.backup_name]
    assert store.row(changed)["SizeBytes"] == 42
    assert store.status(changed) == "Succeeded"
    assert store.status(other) == "Pruned"  # the rest of the transaction went through
    # Its blob is gone already; the next pass completes the row.
    assert names(store.run().pruned) == {changed.backup_name}
    store.assert_consistent()


def test_a_pruned_row_with_a_leftover_blob_loses_the_blob(store: Store):
    pruned = store.record(timedelta(days=40), Status.PRUNED)
    store.add(pruned)

    result = store.run()

    assert store.blobs() == set()
    assert names(result.pruned) == {pruned.backup_name}
    assert store.status(pruned) == "Pruned"
