"""Pending configuration changes in the operations table: one row per service.

``PartitionKey`` ``change``, ``RowKey`` the service's key. Event Grid delivers at least
once and in any order, from any number of instances at once, so every write is a
read-merge-write guarded by the row's ETag (create when missing), retried on a conflict;
the merge itself (shared.rules.debounce) ignores an event id it has already counted, so
a duplicate delivery writes nothing. A backup pays the row the same way.

The row stays after it is paid (count 0), holding the start of the backup that paid it
and the last event ids: a late or redelivered event is then recognised as already
inside a backup.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.adapters.ledger import Conflict, replace_unchanged
from shared.rules.changes import Change
from shared.rules.debounce import PendingChange, Recent, merge, pay
from shared.rules.model import utc

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = logging.getLogger(__name__)

CHANGE_PARTITION = "change"
ATTEMPTS = 12  # racing writers: each conflict means another writer made progress
BACKOFF_SECONDS = 0.05  # times the attempt, jittered: racing writers spread out
_jitter = random.SystemRandom()


@dataclass(frozen=True)
class Recorded:
    pending: PendingChange
    written: bool  # False: the change was already counted (a duplicate) or already paid


class ChangeStore:
    """Each service's pending change, merged and paid under the row's ETag."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def get(self, service: str) -> PendingChange | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return from_entity(self.table.get_entity(CHANGE_PARTITION, service))
        except ResourceNotFoundError:
            return None

    def record(self, change: Change) -> Recorded:
        """Count ``change`` in its service's pending change, once whatever the deliveries."""
        return self._update(change.service, lambda current: merge(current, change))

    def pay(self, service: str, backup_name: str, started_at: datetime) -> Recorded:
        """Settle the service's pending change with a backup that started at ``started_at``
        and succeeded: what changed before then is in it."""

        def paid(current: PendingChange | None) -> PendingChange:
            return pay(current or PendingChange(service), backup_name, started_at)

        return self._update(service, paid)

    def all(self) -> Iterator[PendingChange]:
        """Every service's row, pending or paid."""
        rows = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": CHANGE_PARTITION})
        for entity in rows:
            yield from_entity(entity)

    def pending(self) -> Iterator[PendingChange]:
        """The services with unprotected changes (a filter the table applies)."""
        rows = self.table.query_entities(
            "PartitionKey eq @pk and Count gt @zero",
            parameters={"pk": CHANGE_PARTITION, "zero": 0},
        )
        for entity in rows:
            found = from_entity(entity)
            if found.is_pending:
                yield found

    def forget(self, service: str) -> None:
        """Drop a service's row (it is no longer configured)."""
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(CHANGE_PARTITION, service)

    def _update(
        self, service: str, step: Callable[[PendingChange | None], PendingChange]
    ) -> Recorded:
        from azure.core.exceptions import ResourceExistsError

        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(_jitter.uniform(0, BACKOFF_SECONDS * attempt))
            current = self.get(service)
            wanted = step(current)
            if current is not None and wanted == current:
                return Recorded(current, written=False)
            try:
                if current is None:
                    meta = self.table.create_entity(to_entity(wanted))
                    etag = meta.get("etag")
                else:
                    etag = replace_unchanged(self.table, to_entity(wanted), current.etag)
            except (Conflict, ResourceExistsError):
                log.info("The pending change of %s moved meanwhile; merging again", service)
                continue
            return Recorded(_with_etag(wanted, etag), written=True)
        raise Conflict(f"{CHANGE_PARTITION}/{service}: {ATTEMPTS} conflicting writers in a row")


def _with_etag(pending: PendingChange, etag: Any) -> PendingChange:
    return replace(pending, etag=str(etag) if etag else None)


def to_entity(pending: PendingChange) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": CHANGE_PARTITION,
        "RowKey": pending.service,
        "Count": pending.count,
        "Recent": json.dumps([{"at": _iso(r.at), "what": r.what} for r in pending.recent]),
        "Seen": json.dumps(list(pending.seen)),
        "PaidBy": pending.paid_by,
    }
    if pending.first is not None:
        entity["First"] = utc(pending.first)
    if pending.last is not None:
        entity["Last"] = utc(pending.last)
    if pending.protected_at is not None:
        entity["ProtectedAt"] = utc(pending.protected_at)
    return entity


def from_entity(entity: Any) -> PendingChange:
    metadata = getattr(entity, "metadata", None) or {}
    count = entity.get("Count", 0)
    return PendingChange(
        service=str(entity["RowKey"]),
        first=_time(entity.get("First")),
        last=_time(entity.get("Last")),
        count=int(count.value if hasattr(count, "value") else count or 0),
        recent=tuple(_recent(entity.get("Recent"))),
        seen=tuple(str(s) for s in _json_list(entity.get("Seen"))),
        protected_at=_time(entity.get("ProtectedAt")),
        paid_by=str(entity.get("PaidBy") or ""),
        etag=metadata.get("etag"),
    )


def _recent(text: Any) -> Iterator[Recent]:
    for item in _json_list(text):
        if not isinstance(item, dict):
            continue
        try:
            at = utc(datetime.fromisoformat(str(item["at"])))
        except (KeyError, ValueError):
            continue
        yield Recent(at, str(item.get("what", "")))


def _json_list(text: Any) -> list[Any]:
    try:
        items = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return []
    return items if isinstance(items, list) else []


def _time(value: Any) -> datetime | None:
    return utc(value) if isinstance(value, datetime) else None


def _iso(moment: datetime) -> str:
    return utc(moment).isoformat().replace("+00:00", "Z")
