"""Carrying a pruning plan out, pure half: which blobs go, which rows change and how, and
the answer of `POST /api/prune` (docs/http-api.md; the rules in docs/ledger.md)."""

from __future__ import annotations

from datetime import timedelta

from shared.rules.manifest import manifest_blob_name
from shared.rules.model import Status
from shared.rules.naming import backup_name
from shared.rules.prune_result import result_of
from shared.rules.reconcile import (
    PrunePlan,
    blobs_to_delete,
    by_backup,
    reconcile,
    row_changes,
    vanished_error,
)
from tests.rules.test_retention import ACCOUNT, CONTAINER, NOW, record

# One row or blob of each kind a pass meets (retention 30 days, min_keep 1).
EXPIRED = record("contoso-apim", timedelta(days=40))  # blob and manifest present: pruned
GONE = record("contoso-apim", timedelta(days=35))  # due, blob already gone: pruned
LOST = record("contoso-apim", timedelta(days=2))  # within retention, blob gone: Failed
KEPT = record("contoso-apim", timedelta(days=1))
DONE = record("contoso-apim", timedelta(days=50), Status.PRUNED)  # nothing left
STALE = record("contoso-apim", timedelta(days=45), Status.PRUNED)  # leftover blob
FOREIGN = record("fabrikam", timedelta(days=60), container="elsewhere")
OLD_ORPHAN = backup_name("tailspin", NOW - timedelta(days=31))
YOUNG_ORPHAN = backup_name("tailspin", NOW - timedelta(days=3))
BLOBS = {
    EXPIRED.blob_name,
    manifest_blob_name(EXPIRED.blob_name),
    KEPT.blob_name,
    STALE.blob_name,
    manifest_blob_name(STALE.blob_name),
    OLD_ORPHAN,
    manifest_blob_name(OLD_ORPHAN),
    YOUNG_ORPHAN,
    "notes.txt",
}


def _plan() -> PrunePlan:
    return reconcile(
        [EXPIRED, GONE, LOST, KEPT, DONE, STALE, FOREIGN],
        BLOBS,
        now=NOW,
        retention_days=30,
        min_keep=1,
        account_name=ACCOUNT,
        container_name=CONTAINER,
    )


def test_the_plan_sorts_every_kind_with_its_reason() -> None:
    plan = _plan()
    assert [(d.record, d.reason) for d in plan.prune] == [
        (EXPIRED, "expired 2026-10-22"),
        (GONE, "expired 2026-10-27; blob already gone"),
    ]
    assert [d.record for d in plan.keep] == [KEPT, DONE, FOREIGN]
    assert plan.keep[-1].reason == "blob is in container 'elsewhere', not 'apim-backups'"
    assert [(d.record, d.reason) for d in plan.vanished] == [(LOST, "blob vanished")]
    assert [(d.record, d.reason) for d in plan.stale] == [
        (STALE, "already pruned; leftover blob deleted")
    ]
    assert [(o.blob_name, o.service, o.delete, o.reason) for o in plan.orphans] == [
        (
            OLD_ORPHAN,
            "tailspin",
            True,
            "orphan: no ledger row, started 2026-10-01, more than 30 days ago",
        ),
        (
            YOUNG_ORPHAN,
            "tailspin",
            False,
            "orphan: no ledger row, started 2026-10-29; deleted once 30 days old",
        ),
    ]
    assert plan.present == frozenset(BLOBS)


def test_an_orphan_exactly_30_days_old_is_kept() -> None:
    name = backup_name("tailspin", NOW - timedelta(days=30))
    plan = reconcile(
        [],
        {name},
        now=NOW,
        retention_days=30,
        min_keep=1,
        account_name=ACCOUNT,
        container_name=CONTAINER,
    )
    assert [o.delete for o in plan.orphans] == [False]


def test_the_blobs_that_go_are_pruned_leftover_and_old_orphan_ones_with_their_manifests() -> None:
    assert blobs_to_delete(_plan()) == [
        EXPIRED.blob_name,
        STALE.blob_name,
        OLD_ORPHAN,
        manifest_blob_name(EXPIRED.blob_name),
        manifest_blob_name(STALE.blob_name),
        manifest_blob_name(OLD_ORPHAN),
    ]


def test_a_leftover_manifest_of_a_pruned_row_goes_even_when_its_backup_is_gone() -> None:
    plan = reconcile(
        [DONE],
        {manifest_blob_name(DONE.blob_name)},
        now=NOW,
        retention_days=30,
        min_keep=1,
        account_name=ACCOUNT,
        container_name=CONTAINER,
    )
    assert blobs_to_delete(plan) == [manifest_blob_name(DONE.blob_name)]


def test_rows_change_to_pruned_or_failed_and_a_failed_delete_leaves_its_row_alone() -> None:
    changes = row_changes(_plan(), {EXPIRED.blob_name}, CONTAINER, NOW)
    assert [(c.record, c.changes) for c in changes] == [
        (GONE, {"Status": "Pruned", "PrunedAt": NOW}),
        (
            LOST,
            {
                "Status": "Failed",
                "Error": vanished_error(LOST, CONTAINER, NOW),
            },
        ),
    ]


def test_the_vanished_error_names_blob_container_and_when() -> None:
    assert vanished_error(LOST, CONTAINER, NOW) == (
        f"The backup blob '{LOST.blob_name}' has vanished from container 'apim-backups' "
        "(found missing at 2026-11-01T12:00:00Z); the backup cannot be restored."
    )


def test_a_manifest_that_could_not_go_holds_its_backup_back() -> None:
    assert by_backup(
        {manifest_blob_name(EXPIRED.blob_name): "403", OLD_ORPHAN: "busy", "x.txt": "no"}
    ) == {EXPIRED.blob_name: "403", OLD_ORPHAN: "busy", "x.txt": "no"}


def _entry(rec, status: str, reason: str) -> dict[str, object]:
    return {
        "backupName": rec.backup_name,
        "service": rec.service,
        "status": status,
        "createdAt": rec.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reason": reason,
    }


def test_the_answer_of_a_pass_with_failures() -> None:
    result = result_of(
        _plan(), False, {EXPIRED.backup_name: "403", OLD_ORPHAN: "busy", LOST.backup_name: "412"}
    )
    assert not result.ok
    assert result.to_json() == {
        "dryRun": False,
        "pruned": [
            _entry(GONE, "Succeeded", "expired 2026-10-27; blob already gone"),
            _entry(STALE, "Pruned", "already pruned; leftover blob deleted"),
        ],
        "kept": [
            _entry(KEPT, "Succeeded", "within retention (30 days)"),
            _entry(FOREIGN, "Succeeded", "blob is in container 'elsewhere', not 'apim-backups'"),
        ],
        "markedFailed": [],
        "found": [],
        "orphans": [
            {
                "blobName": OLD_ORPHAN,
                "service": "tailspin",
                "createdAt": "2026-10-01T12:00:00Z",
                "deleted": False,
                "reason": "orphan: no ledger row, started 2026-10-01, more than 30 days ago",
            },
            {
                "blobName": YOUNG_ORPHAN,
                "service": "tailspin",
                "createdAt": "2026-10-29T12:00:00Z",
                "deleted": False,
                "reason": "orphan: no ledger row, started 2026-10-29; deleted once 30 days old",
            },
        ],
        "errors": [
            {"name": EXPIRED.backup_name, "error": "403"},
            {"name": LOST.backup_name, "error": "412"},
            {"name": OLD_ORPHAN, "error": "busy"},
        ],
        "alreadyPruned": 1,
    }


def test_the_answer_of_a_clean_dry_run() -> None:
    result = result_of(_plan(), True, {})
    body = result.to_json()
    assert result.ok and body["dryRun"] is True and body["errors"] == []
    assert [e["backupName"] for e in body["pruned"]] == [
        EXPIRED.backup_name,
        GONE.backup_name,
        STALE.backup_name,
    ]
    assert body["pruned"][0]["reason"] == "expired 2026-10-22"
    assert body["markedFailed"] == [_entry(LOST, "Succeeded", "blob vanished: row marked Failed")]
    assert [(o["blobName"], o["deleted"]) for o in body["orphans"]] == [
        (OLD_ORPHAN, True),
        (YOUNG_ORPHAN, False),
    ]
    assert body["alreadyPruned"] == 1


def test_already_pruned_rows_are_counted_each() -> None:
    older = record("contoso-apim", timedelta(days=55), Status.PRUNED)
    plan = reconcile(
        [DONE, older],
        set(),
        now=NOW,
        retention_days=30,
        min_keep=1,
        account_name=ACCOUNT,
        container_name=CONTAINER,
    )
    assert result_of(plan, False, {}).to_json()["alreadyPruned"] == 2
