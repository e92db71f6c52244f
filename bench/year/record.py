"""The year's own record of what happened, kept apart from the product.

What APIM did comes from the emulator (its operations, in the simulation's time, and the
start requests it received); which blobs exist, and in which step each one went, from
listing the container in Azurite after every step; what the product said from its
signals logger; what the ledger holds from reading the table raw, as any auditor may
(docs/ledger.md). Nothing here imports the product: the oracle (``bench.year.oracle``)
judges from this record and the documented contract alone.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

# The contracts the record reads by, as documented (not imported from the product):
SIGNALS_LOGGER = "apim_backup.signals"  # docs/reliability.md, "Signals"
SIGNAL_MESSAGE = re.compile(r"^SIGNAL (?P<name>[A-Za-z]+) (?P<fields>\{.*\})$", re.DOTALL)
OUTCOMES_LOGGER = "apim_backup.outcomes"  # docs/timers-and-signals.md, "Outcome records"
OUTCOME_MESSAGE = re.compile(r"^OUTCOME (?P<fields>\{.*\})$", re.DOTALL)
MANIFEST_SUFFIX = ".manifest.json"  # docs/ledger.md, "Backup names"
BACKUP_NAME = re.compile(r"^(?P<service>.+)-(?P<stamp>\d{8}T\d{6}Z)\.apimbackup$")
START_PATH = re.compile(r"/service/(?P<service>[^/]+)/(?P<kind>backup|restore)$", re.IGNORECASE)


class Control(Protocol):
    """The part of the emulator's controls the record reads."""

    def operations_since(self, since: str) -> list[dict[str, Any]]: ...

    def requests(self) -> list[dict[str, Any]]: ...


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def named_time(backup_name: str) -> datetime | None:
    """The moment in a backup's name: "the UTC moment the backup was started"."""
    match = BACKUP_NAME.match(backup_name)
    if match is None:
        return None
    return datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def backup_of(blob_name: str) -> str:
    """The backup a blob belongs to: itself, or the backup a manifest describes."""
    return blob_name.removesuffix(MANIFEST_SUFFIX)


@dataclass
class ApimOperation:
    """One backup or restore as the emulator ran it."""

    id: str
    kind: str  # "backup" or "restore"
    service: str  # lower case; a restore's target
    backup_name: str
    container: str
    status: str  # Running, Succeeded, Failed
    started_at: datetime
    due_at: datetime  # when APIM finishes it
    completed_at: datetime | None
    size: int | None
    error: str

    @classmethod
    def of(cls, raw: dict[str, Any]) -> ApimOperation:
        error = raw.get("error") or {}
        started = _time(raw["startedAt"])
        assert started is not None
        return cls(
            id=str(raw["id"]),
            kind=str(raw["kind"]),
            service=str(raw["service"]).lower(),
            backup_name=str(raw["backupName"]),
            container=str(raw["container"]),
            status=str(raw["status"]),
            started_at=started,
            due_at=_time(raw.get("dueAt")) or started,
            completed_at=_time(raw.get("completedAt")),
            size=raw.get("sizeBytes"),
            error=f"{error.get('code', '')}: {error.get('message', '')}" if error else "",
        )

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"

    @property
    def failed(self) -> bool:
        return self.status == "Failed"

    @property
    def taken_at(self) -> datetime:
        """When the backup was taken: the moment in its name (what the product and an
        operator measure age by), or APIM's start when the name has none."""
        return named_time(self.backup_name) or self.started_at


@dataclass(frozen=True)
class StartRequest:
    """One backup or restore start that reached Resource Manager."""

    kind: str
    service: str
    backup_name: str
    at: datetime
    status: int | None  # None: the connection was dropped
    taken: bool  # the emulator carried it out (202, or a fault that accepted it first)


@dataclass(frozen=True)
class Deletion:
    """A blob that was there before a step and gone after it."""

    name: str
    step: str
    after: datetime  # the step began
    by: datetime  # the step ended


@dataclass(frozen=True)
class SignalSeen:
    name: str
    fields: dict[str, Any]
    at: datetime
    step: str


@dataclass(frozen=True)
class OutcomeSeen:
    """One outcome record the product wrote (``OUTCOME {json}``): what it says ended."""

    kind: str
    backup_name: str
    target: str  # a restore's target, lower case; "" for a backup
    trigger: str
    status: str
    started_at: datetime
    completed_at: datetime
    duration_seconds: float

    @classmethod
    def of(cls, fields: dict[str, Any]) -> OutcomeSeen:
        started, completed = _time(fields.get("startedAt")), _time(fields.get("completedAt"))
        assert started is not None and completed is not None
        return cls(
            kind=str(fields.get("kind")),
            backup_name=str(fields.get("backupName")),
            target=str(fields.get("target") or "").lower(),
            trigger=str(fields.get("trigger")),
            status=str(fields.get("status")),
            started_at=started,
            completed_at=completed,
            duration_seconds=float(fields.get("durationSeconds") or 0.0),
        )


@dataclass(frozen=True)
class ChangeMade:
    """A configuration change the year made through Resource Manager (the emulator)."""

    service: str
    at: datetime
    what: str


@dataclass(frozen=True)
class LedgerRow:
    """A ledger row as the table holds it (docs/ledger.md's columns)."""

    name: str
    service: str
    status: str
    error: str
    size: int | None
    container: str

    @property
    def ended_failed(self) -> bool:
        """Failed, or Failed once and pruned since (a Pruned row keeps its Error)."""
        return self.status == "Failed" or (self.status == "Pruned" and bool(self.error))


@dataclass(frozen=True)
class Outage:
    """A stretch in which the year held a service busy on purpose (a deployment)."""

    service: str
    start: datetime
    end: datetime
    kind: str


@dataclass
class Injected:
    """What the driver did to the world, as far as the oracle's rules need it."""

    outages: list[Outage] = field(default_factory=list)
    # When each scheduled run began: the timer's firing (early or not), or the schedule's
    # time on a day the driver fired no timer (the quiet day at the end: the host down).
    runs: list[datetime] = field(default_factory=list)
    on_demand: set[str] = field(default_factory=set)  # backups started on demand
    housekeeping: list[datetime] = field(default_factory=list)  # housekeeping ticks run
    standby_syncs: list[tuple[datetime, datetime]] = field(default_factory=list)  # began, ended
    changes: list[ChangeMade] = field(default_factory=list)  # in the order made


class SignalTap(logging.Handler):
    """Every ``SIGNAL <Name> <JSON>`` record of the signals logger, with the simulated time
    and the step it came in, and every ``OUTCOME <JSON>`` record of the outcomes logger."""

    LOGGERS = (SIGNALS_LOGGER, OUTCOMES_LOGGER)

    def __init__(self, clock: Callable[[], datetime]) -> None:
        super().__init__(logging.DEBUG)
        self.clock = clock
        self.step = "start"
        self.seen: list[SignalSeen] = []
        self.outcomes: list[OutcomeSeen] = []
        self._guard = threading.Lock()
        self._levels: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        outcome = OUTCOME_MESSAGE.match(message)
        if outcome is not None:
            with self._guard:
                self.outcomes.append(OutcomeSeen.of(json.loads(outcome["fields"])))
            return
        match = SIGNAL_MESSAGE.match(message)
        if match is None:
            return
        seen = SignalSeen(match["name"], json.loads(match["fields"]), self.clock(), self.step)
        with self._guard:
            self.seen.append(seen)

    def __enter__(self) -> SignalTap:
        self._levels = {}
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(self)
            self._levels[name] = logger.level
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)  # outcome records are INFO
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            logger.removeHandler(self)
            logger.setLevel(self._levels.get(name, logging.NOTSET))


@dataclass
class Record:
    """What happened, as the emulator and storage saw it."""

    control: Control
    container: str  # the backup container the year watches (BACKUP_CONTAINER)
    list_blobs: Callable[[], Iterable[str]]  # the container's blob names
    read_ledger: Callable[[], Iterable[dict[str, Any]]]  # raw ledger entities
    read_operations: Callable[[], Iterable[dict[str, Any]]]  # raw OPERATIONS_TABLE entities
    since: datetime
    operations: dict[str, ApimOperation] = field(default_factory=dict)
    starts: list[StartRequest] = field(default_factory=list)
    present: set[str] = field(default_factory=set)  # blob names, after the last step
    before: set[str] = field(default_factory=set)  # ... and before it
    deletions: list[Deletion] = field(default_factory=list)
    ledger: dict[str, LedgerRow] = field(default_factory=dict)  # at the last night's end
    ever: dict[str, LedgerRow] = field(default_factory=dict)  # every row seen, as last seen
    # Indexes of the container's operations, rebuilt when one starts or changes:
    _backups: list[ApimOperation] = field(default_factory=list)  # in start order
    _restores: list[ApimOperation] = field(default_factory=list)
    _by_service: dict[str, list[ApimOperation]] = field(default_factory=dict)  # newest first
    _by_name: dict[str, list[ApimOperation]] = field(default_factory=dict)

    def observe(self, step: str, began: datetime, now: datetime) -> list[Deletion]:
        """After a step: what APIM did meanwhile, then the container (in that order: asking
        the emulator finishes the operations whose time has come, writing their blobs)."""
        changed = False
        for raw in self.control.operations_since(self.since.isoformat()):
            operation = ApimOperation.of(raw)
            changed = changed or self.operations.get(operation.id) != operation
            self.operations[operation.id] = operation
        self.since = now
        if changed:
            self._index()
        listing = set(self.list_blobs())
        gone = [Deletion(n, step, began, now) for n in sorted(self.present - listing)]
        self.before, self.present = self.present, listing
        self.deletions.extend(gone)
        return gone

    def read_starts(self) -> None:
        """The start requests in the emulator's request log (read before it is cleared)."""
        for entry in self.control.requests():
            match = START_PATH.search(str(entry.get("path", "")))
            body = entry.get("body")
            if entry.get("method") != "POST" or match is None or not isinstance(body, dict):
                continue
            status = entry.get("status")
            at = _time(entry.get("time"))
            assert at is not None
            self.starts.append(
                StartRequest(
                    kind=match["kind"].lower(),
                    service=match["service"].lower(),
                    backup_name=str(body.get("backupName", "")),
                    at=at,
                    status=status if isinstance(status, int) else None,
                    taken=status == 202 or entry.get("acceptedStatus") == 202,
                )
            )

    def read_ledger_rows(self) -> dict[str, LedgerRow]:
        rows = {}
        for entity in self.read_ledger():
            size = getattr(entity.get("SizeBytes"), "value", entity.get("SizeBytes"))  # Int64
            row = LedgerRow(
                name=str(entity["RowKey"]),
                service=str(entity["PartitionKey"]),
                status=str(entity.get("Status", "")),
                error=str(entity.get("Error") or ""),
                size=int(size) if size is not None else None,
                container=str(entity.get("Container") or ""),
            )
            rows[row.name] = row
        self.ledger = rows
        self.ever.update(rows)
        return rows

    # -- questions the oracle asks ----------------------------------------------------

    def _index(self) -> None:
        ours = sorted(
            (op for op in self.operations.values() if op.container == self.container),
            key=lambda op: op.started_at,
        )
        self._backups = [op for op in ours if op.kind == "backup"]
        self._restores = [op for op in ours if op.kind == "restore"]
        self._by_service, self._by_name = {}, {}
        for op in self._backups:
            self._by_service.setdefault(op.service, []).append(op)
            self._by_name.setdefault(op.backup_name, []).append(op)
        for ops in self._by_service.values():
            ops.sort(key=lambda op: (op.taken_at, op.backup_name), reverse=True)

    def backups(self) -> list[ApimOperation]:
        """The backups APIM took into the container, in the order it started them."""
        return self._backups

    def restores(self) -> list[ApimOperation]:
        """The restores APIM ran from the container, in the order it started them."""
        return self._restores

    def backups_of(self, service: str) -> list[ApimOperation]:
        """``service``'s backups, newest first (by the time in their names)."""
        return self._by_service.get(service, [])

    def backups_named(self, name: str) -> list[ApimOperation]:
        return self._by_name.get(name, [])
