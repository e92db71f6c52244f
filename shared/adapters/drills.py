"""The restore drills' rows in the operations table (PartitionKey ``drill``, RowKey
``<source>=><standby>``): each standby pair's last drill (docs/ledger.md). What they
mean is :mod:`shared.rules.drills`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.rules.drills import Drill, pair_key

if TYPE_CHECKING:
    from azure.data.tables import TableClient


class DrillStore:
    def __init__(self, table: TableClient) -> None:
        self.table = table  # OPERATIONS_TABLE's client

    def all(self) -> dict[str, Drill]:
        """Every pair's last drill, by ``<source>=><standby>`` (one query)."""
        rows = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": Drill.PARTITION})
        drills = (Drill.from_entity(e) for e in rows)
        return {pair_key(d.source, d.target): d for d in drills}

    def get(self, source: str, target: str) -> Drill | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return Drill.from_entity(
                self.table.get_entity(Drill.PARTITION, pair_key(source, target))
            )
        except ResourceNotFoundError:
            return None

    def save(self, drill: Drill) -> None:
        """The pair's last drill, replaced whole."""
        from azure.data.tables import UpdateMode

        self.table.upsert_entity(drill.to_entity(), mode=UpdateMode.REPLACE)
