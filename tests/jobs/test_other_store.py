"""Rows whose blob is in another container or storage account (issue 17, defects 4 and 7).

The listing of the configured container says nothing about a blob kept elsewhere: such
a row is never judged by it. Pruning keeps it (with a reason); the history pass keeps a
``Failed`` one, whose blob may still exist (a ``Pruned`` one had its blob deleted before
it was marked, so it goes). Against Azurite and the emulator.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.jobs import history, housekeeping
from shared.rules.model import BackupRecord, Status, Trigger
from shared.rules.naming import backup_name
from tests.product import Product

pytestmark = pytest.mark.stack

SERVICE = "contoso-apim"


def _row(
    product: Product,
    age: timedelta,
    status: Status,
    *,
    account: str | None = None,
    container: str | None = None,
) -> BackupRecord:
    settings = product.runtime.settings
    created = (product.clock.now - age).replace(microsecond=0)
    return BackupRecord(
        service=SERVICE,
        backup_name=backup_name(SERVICE, created),
        service_id=product.stack.service_id(SERVICE),
        storage_account=account or settings.storage_account,
        container=container or settings.container,
        status=status,
        trigger=Trigger.SCHEDULE,
        created_at=created,
        sku="Developer",
        error="APIM said no" if status is Status.FAILED else None,
        pruned_at=created + timedelta(days=30) if status is Status.PRUNED else None,
    )


def _status(product: Product, record: BackupRecord) -> Status | None:
    row = product.runtime.ledger.get(record.service, record.backup_name)
    return None if row is None else row.status


def test_changing_the_storage_account_fails_no_existing_backup(product: Product):
    """BACKUP_STORAGE_ACCOUNT changed, container name kept: the new account's listing
    does not have the old backups. They are kept as they are, not marked Failed."""
    product.runtime.blobs.container.create_container()
    old = [
        _row(product, timedelta(days=d), Status.SUCCEEDED, account="oldaccount") for d in (1, 3, 5)
    ]
    for r in old:
        product.runtime.ledger.add(r)

    report = housekeeping.prune_now(product.runtime, dry_run=False)

    assert report["markedFailed"] == []
    assert report["errors"] == []
    kept = {k["backupName"]: k["reason"] for k in report["kept"]}
    assert set(kept) == {r.backup_name for r in old}
    assert all("storage account 'oldaccount'" in why for why in kept.values()), kept
    assert [_status(product, r) for r in old] == [Status.SUCCEEDED] * 3


def test_history_keeps_a_failed_row_of_another_store_and_deletes_a_pruned_one(product: Product):
    """A Failed row's blob may exist (a backup that failed late can leave one); in
    another container or account, this listing cannot tell: the row stays, never a guess.
    A Pruned row's blob was deleted before the row was marked: the row goes."""
    runtime = product.reconfigure(LEDGER_HISTORY_DAYS="60")
    runtime.blobs.container.create_container()
    day = timedelta(days=1)
    failed_container = _row(product, 70 * day, Status.FAILED, container="old-backups")
    failed_account = _row(product, 71 * day, Status.FAILED, account="oldaccount")
    pruned_container = _row(product, 72 * day, Status.PRUNED, container="old-backups")
    failed_here = _row(product, 73 * day, Status.FAILED)  # no blob in this listing: goes
    rows = (failed_container, failed_account, pruned_container, failed_here)
    for r in rows:
        runtime.ledger.add(r)

    result = history.delete_old_rows(runtime, force=True)

    assert result is not None and result.errors == {}
    assert sorted(result.deleted) == sorted([pruned_container.backup_name, failed_here.backup_name])
    assert sorted(result.kept_elsewhere) == sorted(
        [failed_container.backup_name, failed_account.backup_name]
    )
    assert _status(product, failed_container) is Status.FAILED
    assert _status(product, failed_account) is Status.FAILED
    assert _status(product, pruned_container) is None
    assert _status(product, failed_here) is None
