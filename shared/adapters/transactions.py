"""Many table rows in few requests: ETag-guarded updates and deletes in transactions.

Pruning updates ledger rows this way, and the history pass deletes old ledger and
operation rows. A transaction holds at most ``TABLE_BATCH_SIZE`` operations of one
partition. Each operation is conditional on the row's ETag (``IfNotModified``) when it
is known, so a row that changed since it was read is never overwritten nor deleted.

A transaction is all-or-nothing: when one operation fails with 412 (changed meanwhile)
or 404 (row gone), the service names it; that row is taken out and the rest of the
chunk resubmitted without it. Any other failure fails every row of the chunk, and the
next chunk is tried. Callers hear, per RowKey, what could not be done and why.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from azure.data.tables import TableClient

# The SDK is imported inside the functions that use it: importing the function app must
# not load it (a lighter cold start).

log = logging.getLogger(__name__)

TABLE_BATCH_SIZE = 100  # the Table transaction limit (Azurite breaks on 101)

Operation = tuple[str, dict[str, Any], dict[str, Any]]


class _Write(Protocol):
    @property
    def partition(self) -> str: ...

    @property
    def row(self) -> str: ...

    def operation(self) -> Operation: ...


def _guard(etag: str | None) -> dict[str, Any]:
    from azure.core import MatchConditions

    if etag is None:
        return {}
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


@dataclass(frozen=True)
class RowUpdate:
    """Columns merged into one row (``UpdateMode.MERGE``), if it is unchanged."""

    partition: str
    row: str
    etag: str | None
    changes: dict[str, Any]

    def operation(self) -> Operation:
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": self.partition, "RowKey": self.row, **self.changes}
        return ("update", entity, {"mode": UpdateMode.MERGE} | _guard(self.etag))


@dataclass(frozen=True)
class RowDelete:
    """One row deleted, if it is unchanged."""

    partition: str
    row: str
    etag: str | None

    def operation(self) -> Operation:
        return ("delete", {"PartitionKey": self.partition, "RowKey": self.row}, _guard(self.etag))


@dataclass
class Deletions:
    """What a run of deletes did: the RowKeys deleted (or already gone), and the rest with why."""

    deleted: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def update_rows(table: TableClient, updates: Sequence[RowUpdate]) -> dict[str, str]:
    """Apply the updates, grouped by partition; answer the RowKeys not updated, with why."""
    by_partition: dict[str, list[RowUpdate]] = defaultdict(list)
    for update in updates:
        by_partition[update.partition].append(update)
    failures: dict[str, str] = {}
    for rows in by_partition.values():
        for chunk in _chunks(rows):
            done, skipped, error = _submit(table, chunk)
            for bad, status in skipped:
                failures[bad.row] = f"row changed meanwhile ({status}); not updated"
                log.warning("Ledger row %s changed meanwhile; left for the next pass", bad.row)
            if error is not None:
                log.warning(
                    "Ledger transaction of %d rows failed: %s",
                    len(done),
                    error.__class__.__name__,
                )
                failures |= {
                    u.row: f"ledger update failed: {error.__class__.__name__}" for u in done
                }
    return failures


def delete_rows(table: TableClient, deletes: Iterable[RowDelete]) -> Deletions:
    """Delete the rows, consumed as they come (a query's pages may feed them): a
    transaction as soon as 100 of one partition are in hand. A row already gone (404)
    counts as deleted; one changed meanwhile (412) is kept."""
    result = Deletions()
    for chunk in _chunks(deletes):
        done, skipped, error = _submit(table, chunk)
        for bad, status in skipped:
            if status == 404:
                result.deleted.append(bad.row)
            else:
                result.errors[bad.row] = "row changed meanwhile (412); kept"
        if error is not None:
            log.warning("Deleting %d history row(s) failed: %s", len(done), type(error).__name__)
            for key in done:
                result.errors[key.row] = f"delete failed: {type(error).__name__}"
        else:
            result.deleted.extend(k.row for k in done)
    return result


def _chunks[W: _Write](writes: Iterable[W]) -> Iterator[list[W]]:
    """Runs of at most TABLE_BATCH_SIZE writes of one partition, in order, each yielded
    as soon as it is full (or the partition changes, or the writes end)."""
    chunk: list[W] = []
    for write in writes:
        if chunk and write.partition != chunk[0].partition:
            yield chunk
            chunk = []
        chunk.append(write)
        if len(chunk) == TABLE_BATCH_SIZE:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _submit[W: _Write](
    table: TableClient, chunk: list[W]
) -> tuple[list[W], list[tuple[W, int]], Exception | None]:
    """One chunk, as one transaction: (the writes left, each taken out with its status (404
    or 412), the error that failed the writes left, or None when they were applied)."""
    from azure.core.exceptions import AzureError
    from azure.data.tables import TableTransactionError

    rows = list(chunk)
    skipped: list[tuple[W, int]] = []
    while rows:
        try:
            table.submit_transaction([w.operation() for w in rows])
        except TableTransactionError as exc:
            if exc.status_code in (404, 412) and 0 <= exc.index < len(rows):
                # One row changed or went meanwhile: take it out, resubmit the rest.
                skipped.append((rows.pop(exc.index), exc.status_code))
                continue
            return rows, skipped, exc
        except AzureError as exc:
            return rows, skipped, exc
        return rows, skipped, None
    return rows, skipped, None
