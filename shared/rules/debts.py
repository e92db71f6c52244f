"""A missed scheduled backup, as a value: the debt a service owes until a backup of it
succeeds, the wait between attempts to pay it, and the mark a finished scheduled run
leaves (docs/ledger.md, "Owed scheduled backups").

Plain data and the rule for waiting, no I/O: the rows are read and written by
:class:`~shared.adapters.debts.DebtStore`; who owes and when to try again is decided in
:mod:`shared.jobs.debts`, :mod:`shared.jobs.schedule` and :mod:`shared.jobs.catchup`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from shared.rules.model import iso, utc

# Waits between catch-up attempts: 5 minutes doubling, at most 15. A nightly schedule
# and the default 26-hour RPO leave 2 hours: the first try after an outage must come
# soon, and a try costs a few Resource Manager reads.
FIRST_BACKOFF = timedelta(minutes=5)
MAX_BACKOFF = timedelta(minutes=15)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt."""
    wait: timedelta = FIRST_BACKOFF * 2 ** min(max(0, attempts - 1), 10)
    return min(wait, MAX_BACKOFF)


@dataclass(frozen=True)
class Debt:
    """One service's owed backup: a row of the operations table (PartitionKey ``owed``,
    RowKey the service's name), at most one per service."""

    PARTITION: ClassVar[str] = "owed"

    service: str  # lower-case name (RowKey)
    service_id: str
    since: datetime
    attempts: int
    last_error: str
    next_attempt_at: datetime
    operation_id: str = ""  # a start in flight that may pay the debt
    etag: str | None = None

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.PARTITION,
            "RowKey": self.service,
            "ServiceId": self.service_id,
            "Since": utc(self.since),
            "Attempts": self.attempts,
            "LastError": self.last_error[:1000],
            "NextAttemptAt": utc(self.next_attempt_at),
            "OperationId": self.operation_id,
        }

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> Debt:
        metadata = getattr(entity, "metadata", None) or {}
        return cls(
            service=entity["RowKey"],
            service_id=entity.get("ServiceId", ""),
            since=utc(entity["Since"]),
            attempts=int(entity.get("Attempts", 0)),
            last_error=str(entity.get("LastError", "")),
            next_attempt_at=utc(entity["NextAttemptAt"]),
            operation_id=str(entity.get("OperationId", "")),
            etag=metadata.get("etag"),
        )

    def to_api(self) -> dict[str, Any]:
        """Health's ``missedSchedule``."""
        return {
            "since": iso(self.since),
            "attempts": self.attempts,
            "lastError": self.last_error,
            "nextAttemptAt": iso(self.next_attempt_at),
        }


@dataclass(frozen=True)
class TickMark:
    """The scheduled run's mark (PartitionKey ``schedule``, RowKey ``tick``): when a
    scheduled tick last finished, every service started or owed (``RanAt``), and the
    last firing of the schedule for which every service has a Succeeded backup
    (``Covered``, written by housekeeping)."""

    PARTITION: ClassVar[str] = "schedule"
    ROW: ClassVar[str] = "tick"

    ran_at: datetime
    covered: datetime | None = None

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> TickMark:
        covered = entity.get("Covered")
        return cls(utc(entity["RanAt"]), None if covered is None else utc(covered))
