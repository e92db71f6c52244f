"""When each service first appeared: one row per service in the operations table
(PartitionKey ``seen``, RowKey the service's name, ``FirstSeen``), written once by the
RPO check and never changed (docs/ledger.md). What it means is :mod:`shared.rules.rpo`.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import TYPE_CHECKING

from shared.rules.model import utc
from shared.rules.rpo import FIRST_SEEN_PARTITION

if TYPE_CHECKING:
    from azure.data.tables import TableClient


class FirstSeenStore:
    def __init__(self, table: TableClient) -> None:
        self.table = table  # OPERATIONS_TABLE's client

    def all(self) -> dict[str, datetime]:
        """Every service's mark, by service (one query of the partition)."""
        rows = self.table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": FIRST_SEEN_PARTITION}
        )
        return {str(e["RowKey"]): utc(e["FirstSeen"]) for e in rows}

    def note(self, service: str, at: datetime) -> None:
        """Mark ``service`` as first seen at ``at`` unless it already is (create only: of
        two hosts racing, the first mark stays)."""
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self.table.create_entity(
                {"PartitionKey": FIRST_SEEN_PARTITION, "RowKey": service, "FirstSeen": utc(at)}
            )
