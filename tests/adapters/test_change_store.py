"""Pending changes in the operations table (shared.adapters.changes), against Azurite:
idempotent by event id, ETag-guarded under racing writers, paid by a later backup."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from shared.adapters.changes import CHANGE_PARTITION, ChangeStore
from shared.rules.changes import Change
from tests.product import Product

pytestmark = pytest.mark.stack

SERVICE = "contoso-apim"


@pytest.fixture
def store(product: Product) -> ChangeStore:
    return ChangeStore(product.runtime.operations.table)


def change(product: Product, minutes: float, event_id: str, what: str = "apis/a updated"):
    return Change(event_id, SERVICE, product.clock.now + timedelta(minutes=minutes), what)


def test_a_change_is_recorded_once_however_often_it_is_delivered(
    product: Product, store: ChangeStore
):
    first = store.record(change(product, 0, "e1"))
    again = store.record(change(product, 0, "e1"))

    assert first.written and not again.written
    row = store.get(SERVICE)
    assert row is not None and row.count == 1
    assert row.first == row.last == product.clock.now  # microseconds survive the table
    assert row.what() == ["apis/a updated"]
    assert row.etag == first.pending.etag  # the duplicate wrote nothing
    entity = product.runtime.operations.table.get_entity(CHANGE_PARTITION, SERVICE)
    assert entity["Count"] == 1 and "e1" in entity["Seen"]


def test_changes_merge_first_last_count_and_what(product: Product, store: ChangeStore):
    store.record(change(product, 5, "b", "products/starter created"))
    store.record(change(product, 1, "a", "apis/orders-api;Rev=1 updated"))  # late, out of order
    store.record(change(product, 9, "c", "namedValues/backend-host write"))

    row = store.get(SERVICE)
    assert row is not None and row.count == 3
    assert row.first == product.clock.now + timedelta(minutes=1)
    assert row.last == product.clock.now + timedelta(minutes=9)
    assert row.what() == [
        "apis/orders-api;Rev=1 updated",
        "products/starter created",
        "namedValues/backend-host write",
    ]


def test_racing_writers_lose_nothing_and_count_nothing_twice(product: Product, store: ChangeStore):
    events = [change(product, i / 10, f"event-{i}") for i in range(24)]
    # Three deliveries of each event, spread over six writers (Event Grid at least once,
    # several instances of the function at the same time).
    work = [events[i::6] * 3 for i in range(6)]
    errors: list[BaseException] = []

    def writer(batch: list[Change]) -> None:
        mine = ChangeStore(product.runtime.clients.table(product.runtime.settings.operations_table))
        try:
            for item in batch:
                mine.record(item)
        except BaseException as err:  # reported below, not lost in a thread
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(batch,)) for batch in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not errors
    row = store.get(SERVICE)
    assert row is not None and row.count == 24
    assert set(row.seen) == {e.event_id for e in events}
    assert row.first == events[0].at and row.last == events[-1].at


def test_a_backup_that_started_after_the_last_change_pays_it(product: Product, store: ChangeStore):
    store.record(change(product, 0, "a"))
    store.record(change(product, 3, "b"))

    paid = store.pay(SERVICE, "contoso-apim-x.apimbackup", product.clock.now + timedelta(minutes=4))

    assert paid.written and not paid.pending.is_pending
    assert list(store.pending()) == []
    row = store.get(SERVICE)
    assert row is not None and row.paid_by == "contoso-apim-x.apimbackup"
    # A redelivery, or a late event from before that backup, is already in it.
    assert not store.record(change(product, 3, "b")).written
    assert not store.record(change(product, 2, "late")).written
    # A new change after it is pending again.
    assert store.record(change(product, 6, "c")).pending.count == 1


def test_a_backup_that_started_before_the_last_change_leaves_the_rest_pending(
    product: Product, store: ChangeStore
):
    for i in range(4):
        store.record(change(product, i, f"e{i}"))

    store.pay(SERVICE, "b", product.clock.now + timedelta(minutes=2))

    row = store.get(SERVICE)
    assert row is not None and row.count == 2
    assert row.first == product.clock.now + timedelta(minutes=2)


def test_pending_lists_only_services_with_unprotected_changes(product: Product, store: ChangeStore):
    store.record(change(product, 0, "a"))
    store.record(Change("f", "fabrikam-apim", product.clock.now, "apis/x created"))
    store.pay("fabrikam-apim", "b", product.clock.now + timedelta(minutes=1))

    assert [p.service for p in store.pending()] == [SERVICE]
    assert {p.service for p in store.all()} == {SERVICE, "fabrikam-apim"}
    store.forget("fabrikam-apim")
    assert {p.service for p in store.all()} == {SERVICE}


def test_paying_a_service_with_no_row_writes_the_protection(product: Product, store: ChangeStore):
    started = product.clock.now
    store.pay(SERVICE, "b", started)
    assert not store.record(change(product, -1, "before")).written
    assert store.record(change(product, 1, "after")).written


def test_other_rows_of_the_operations_table_are_left_alone(product: Product, store: ChangeStore):
    table = product.runtime.operations.table
    store.record(change(product, 0, "a"))
    assert list(product.runtime.operations.all()) == []
    assert [e["RowKey"] for e in table.query_entities("PartitionKey eq 'change'")] == [SERVICE]
