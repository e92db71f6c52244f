"""A backup judged Failed from evidence whose blob turns up is found: APIM took it after all.

The evidence rule judges an unconfirmed start ``Failed`` when the service looks idle and
no blob is there once the grace has passed. If APIM does not show ``Updating`` while a
backup runs (a how-to says it does; the API does not promise it), a long backup is judged so before its
blob is written; the next pruning pass sees the blob and makes the row ``Succeeded``
(docs/reliability.md, "What APIM shows during a backup")."""

from __future__ import annotations

from datetime import timedelta

from shared.rules.model import BackupRecord, Status
from shared.rules.prune_result import result_of
from shared.rules.reconcile import PrunePlan, found_note, is_found, reconcile, row_changes
from tests.rules.test_retention import ACCOUNT, CONTAINER, NOW, record

UNCONFIRMED_ERROR = "The start was not confirmed and, 12 minutes later, x is Succeeded"
FAILED = record("contoso-apim", timedelta(hours=3), Status.FAILED).with_changes(
    error=UNCONFIRMED_ERROR
)
POLLED = record("contoso-apim", timedelta(hours=5), Status.FAILED).with_changes(
    operation_url="https://management.azure.com/x/operationresults/1", error="APIM said Failed"
)


def plan(
    rows: list[BackupRecord],
    blobs: set[str],
    *,
    retention_days: int = 30,
    min_keep: int = 1,
    container: str = CONTAINER,
) -> PrunePlan:
    return reconcile(
        rows,
        blobs,
        now=NOW,
        retention_days=retention_days,
        min_keep=min_keep,
        account_name=ACCOUNT,
        container_name=container,
    )


def test_only_a_failed_row_without_an_operation_url_and_with_its_blob_is_found() -> None:
    assert is_found(FAILED, {FAILED.blob_name})
    assert not is_found(FAILED, set())  # no blob: APIM did not take it
    assert not is_found(POLLED, {POLLED.blob_name})  # APIM's own verdict stands
    succeeded = FAILED.with_changes(status=Status.SUCCEEDED)
    assert not is_found(succeeded, {succeeded.blob_name})
    pruned = FAILED.with_changes(status=Status.PRUNED)
    assert not is_found(pruned, {pruned.blob_name})


def test_a_found_row_becomes_succeeded_with_its_size_and_a_note() -> None:
    p = plan([FAILED, POLLED], {FAILED.blob_name, POLLED.blob_name})
    assert [(d.record, d.reason) for d in p.found] == [
        (FAILED, "found: blob present, so API Management took the backup")
    ]
    assert [d.record for d in p.keep] == [POLLED]
    assert p.prune == () and p.vanished == ()

    [change] = row_changes(p, set(), CONTAINER, NOW, {FAILED.blob_name: 2048})
    assert change.record is FAILED  # conditional on the row as read (its etag)
    assert change.changes == {
        "Status": "Succeeded",
        "Error": found_note(FAILED, CONTAINER, NOW),
        "SizeBytes": (2048, "Edm.Int64"),
    }
    [unknown_size] = row_changes(p, set(), CONTAINER, NOW)
    assert "SizeBytes" not in unknown_size.changes

    body = result_of(p, False, {}).to_json()
    assert body["found"] == [
        {
            "backupName": FAILED.backup_name,
            "service": "contoso-apim",
            "status": "Failed",
            "createdAt": FAILED.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reason": "found: blob present, so API Management took the backup",
        }
    ]
    assert [e["backupName"] for e in body["kept"]] == [POLLED.backup_name]
    failed_update = result_of(p, False, {FAILED.backup_name: "412"}).to_json()
    assert failed_update["found"] == []
    assert failed_update["errors"] == [{"name": FAILED.backup_name, "error": "412"}]


def test_the_note_keeps_the_earlier_verdict() -> None:
    assert found_note(FAILED, "apim-backups", NOW) == (
        "Judged Failed from evidence, then found in container 'apim-backups' at "
        "2026-11-01T12:00:00Z: API Management took the backup after all. "
        f"Earlier: {UNCONFIRMED_ERROR}"
    )
    assert found_note(FAILED.with_changes(error=None), "c", NOW) == (
        "Judged Failed from evidence, then found in container 'c' at "
        "2026-11-01T12:00:00Z: API Management took the backup after all."
    )


def test_a_found_backup_counts_among_the_newest_kept() -> None:
    older = record("contoso-apim", timedelta(days=10))
    found_young = record("contoso-apim", timedelta(days=1), Status.FAILED)
    p = plan([older, found_young], {older.blob_name, found_young.blob_name}, retention_days=7)
    # The found backup is the newest existing one: the 10-day-old one is past retention.
    assert [d.record for d in p.prune] == [older]
    assert [d.record for d in p.found] == [found_young]
    # Not found (no blob): the older one is the only backup and min_keep holds it.
    p = plan([older, found_young], {older.blob_name}, retention_days=7)
    assert p.prune == () and p.found == ()
    assert {d.record.backup_name for d in p.keep} == {older.backup_name, found_young.backup_name}


def test_a_found_backup_past_retention_is_pruned_from_the_row_as_read() -> None:
    newest = record("contoso-apim", timedelta(days=1))
    old_found = record("contoso-apim", timedelta(days=40), Status.FAILED)
    p = plan([newest, old_found], {newest.blob_name, old_found.blob_name})
    assert p.found == ()
    assert [(d.record, d.reason) for d in p.prune] == [(old_found, "expired 2026-10-22")]
    assert [c.changes["Status"] for c in row_changes(p, set(), CONTAINER, NOW)] == ["Pruned"]


def test_a_row_of_another_container_is_never_found_by_this_listing() -> None:
    foreign = record("fabrikam", timedelta(hours=2), Status.FAILED, container="elsewhere")
    p = plan([foreign], {foreign.blob_name})
    assert p.found == ()
    assert [d.record for d in p.keep] == [foreign]
