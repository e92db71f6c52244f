"""The schedule's rows in the operations table: owed backups (PartitionKey ``owed``) and
the scheduled run's mark (``schedule``/``tick``), docs/ledger.md.

Beside :class:`~shared.adapters.ledger.OperationStore` (operations and their locks), over
the same table: the only code that writes these rows. What they mean is
:mod:`shared.rules.debts`; who owes and when is decided in :mod:`shared.jobs.debts`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from shared.rules.debts import Debt, TickMark
from shared.rules.model import utc

if TYPE_CHECKING:
    from azure.data.tables import TableClient

    from shared.adapters.operations import OperationStore

# The SDK (azure.core, azure.data.tables) is imported inside each method that needs it:
# importing the function app must not load it (a lighter cold start).


class DebtStore:
    def __init__(self, store: OperationStore) -> None:
        self._store = store

    @property
    def table(self) -> TableClient:
        return self._store.table

    # Debts --------------------------------------------------------------------------

    def all(self) -> dict[str, Debt]:
        """Every service's debt, by service (one query: at most one row per service)."""
        rows = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": Debt.PARTITION})
        return {d.service: d for d in (Debt.from_entity(e) for e in rows)}

    def get(self, service: str) -> Debt | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return Debt.from_entity(self.table.get_entity(Debt.PARTITION, service))
        except ResourceNotFoundError:
            return None

    def save(self, debt: Debt) -> bool:
        """Create the row (a debt never read: no ETag), or replace it if unchanged since
        read. False when it changed, appeared or went meanwhile: the concurrent change
        wins, and no error is raised."""
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.data.tables import UpdateMode

        try:
            if debt.etag is None:
                self.table.create_entity(debt.to_entity())
            else:
                self.table.update_entity(
                    debt.to_entity(),
                    mode=UpdateMode.REPLACE,
                    etag=debt.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    def delete(self, debt: Debt) -> None:
        """Delete the row if unchanged since read; one already gone or changed stays so."""
        from shared.adapters.ledger import delete_unchanged

        delete_unchanged(self.table, Debt.PARTITION, debt.service, debt.etag)

    # The scheduled run's mark ---------------------------------------------------------

    def tick_mark(self) -> TickMark | None:
        """The mark; None before any scheduled run finished here."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return TickMark.from_entity(self.table.get_entity(TickMark.PARTITION, TickMark.ROW))
        except ResourceNotFoundError:
            return None

    def mark_ran(self, at: datetime) -> None:
        """A scheduled run finished at ``at`` (the whole row replaced: ``Covered`` goes)."""
        from azure.data.tables import UpdateMode

        self.table.upsert_entity(
            {"PartitionKey": TickMark.PARTITION, "RowKey": TickMark.ROW, "RanAt": utc(at)},
            mode=UpdateMode.REPLACE,
        )

    def mark_covered(self, due: datetime) -> None:
        """Every service has a Succeeded backup of the run due at ``due`` (merged in)."""
        from azure.data.tables import UpdateMode

        self.table.upsert_entity(
            {"PartitionKey": TickMark.PARTITION, "RowKey": TickMark.ROW, "Covered": utc(due)},
            mode=UpdateMode.MERGE,
        )
