"""A simulated year: nightly schedules, housekeeping ticks and faults, against the local stack.

    .venv/bin/python -m bench.year [--nights 400] [--seed 13]      (or: make year)
    .venv/bin/python -m bench.year --trace-night 2027-10-26   (what happened that day)

Drives the product (its own functions, a Runtime with a simulated clock) against
Azurite and the APIM emulator (whose clock moves with the product's) through
``--nights`` nightly schedules of three services. On most nights a fault from the
matrix is injected (docs/reliability.md): throttled starts within and past the retry
budget, 429/503 on polls, 500 and dropped connections on the start (taken by APIM or
not), the service Updating at 02:00, an operation that fails, storage unreachable for
the scheduled tick or a housekeeping tick, a crash before any write of a tick, and
(in runs of 60 nights or more) one outage longer than the RPO. Afterwards it checks
the invariants and prints the totals; ``check()`` raises on any violation.
"""

from __future__ import annotations

import argparse
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from azure.core.exceptions import ServiceRequestError

from devstack.stack import LocalStack
from shared.jobs import backups, debts, housekeeping, schedule
from shared.rules.manifest import backup_of_manifest
from shared.rules.model import Status, Trigger
from shared.rules.naming import is_backup_name, parse_backup_name
from shared.rules.reconcile import ORPHAN_MIN_AGE
from shared.runtime import Runtime
from shared.settings import Settings
from shared.signals import LOGGER_NAME

SERVICES = ("contoso-apim", "contoso-standby", "fabrikam-standby")
START = datetime(2027, 1, 1, tzinfo=UTC)
# Housekeeping ticks, in minutes after 02:00: dense while the night's backups settle
# and owed ones are caught up (the backoff is 5, 10, then 15 minutes), then every six
# to twelve hours apart (the product runs it every 5 minutes; the sim keeps the count
# down: each tick reads the whole ledger to prune).
TICKS = (5, 10, 15, 25, 40, 60, 75, 90, 120, 180, 720)
BACKUP_SECONDS = 300  # how long each backup runs in the emulator
RPO_HOURS = 26.0

FAULTS = (
    "throttled-start",  # 429 then 503 with Retry-After on the start: retried, one backup
    "throttled-past-budget",  # 429 three times: owed, caught up
    "throttled-poll",  # 429 and 503 with Retry-After on polls
    "start-500-taken",  # APIM starts it, answers 500: unconfirmed, settled by its blob
    "start-dropped-taken",  # APIM starts it, the connection drops
    "start-dropped-lost",  # the connection drops before APIM sees it
    "start-502-lost",  # a gateway 502, APIM never saw it
    "service-updating",  # a deployment holds the service Updating from 01:55 for 1 h
    "operation-fails",  # APIM runs the backup and it fails
    "storage-down-tick",  # storage unreachable for the scheduled tick
    "storage-down-housekeeping",  # storage unreachable for one housekeeping tick
    "crash-tick",  # the scheduled tick dies before its n-th table write
    "crash-housekeeping",  # the first housekeeping tick dies before its n-th write
    "poll-dropped",  # dropped connections on polls
    "manual-backup",  # an on-demand backup in the afternoon (pays any debt)
)
LONG_OUTAGE = timedelta(hours=30)  # longer than the RPO: a breach it explains


class Crash(BaseException):
    """The process dies here: nothing catches it, later writes never happen."""


@dataclass
class CrashPlan:
    writes_left: int
    crashed: bool = False
    where: str = ""  # the write it died before (traced)


class CrashingTable:
    """A TableClient whose ``writes_left``-th next write kills the process."""

    WRITES = frozenset(
        {"create_entity", "update_entity", "upsert_entity", "delete_entity", "submit_transaction"}
    )

    def __init__(self, inner: Any, plan: CrashPlan) -> None:
        self._inner = inner
        self._plan = plan

    def __getattr__(self, name: str) -> Any:
        if self._plan.crashed:
            raise Crash(f"the process is dead: it crashed {self._plan.where}")
        attr = getattr(self._inner, name)
        if name not in self.WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            if self._plan.writes_left <= 0:
                entity = args[0] if args else kwargs.get("entity")
                if isinstance(entity, dict):
                    where = f" of {entity.get('PartitionKey')}/{entity.get('RowKey')}"
                else:
                    where = f" of {'/'.join(map(str, args[:2]))}" if args else ""
                self._plan.where = f"before {name}{where}"
                self._plan.crashed = True
                raise Crash(f"crash {self._plan.where}")
            self._plan.writes_left -= 1
            return attr(*args, **kwargs)

        return write


class Unreachable:
    """Storage that cannot be reached: every use fails as the SDK fails."""

    def __getattr__(self, name: str) -> Any:
        raise ServiceRequestError("storage unreachable (simulated)")


class SimClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class SignalCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.getMessage().split(" ", 2)[1]] += 1


@dataclass
class Totals:
    nights: int = 0
    services: int = len(SERVICES)
    faults: Counter[str] = field(default_factory=Counter)
    scheduled_started: int = 0
    scheduled_owed: int = 0
    catch_up_started: int = 0
    manual_started: int = 0
    ticks: int = 0
    tick_failures: int = 0
    crashes: int = 0
    throttle_waits: int = 0
    backups_succeeded: int = 0
    backups_failed: int = 0
    backups_pruned: int = 0
    unconfirmed_starts: int = 0
    unconfirmed_succeeded: int = 0
    unconfirmed_failed: int = 0
    rpo_breach_ticks: int = 0
    rpo_breaches_explained: int = 0
    rpo_breaches_unexplained: int = 0
    max_age_hours: float = 0.0
    signals: Counter[str] = field(default_factory=Counter)
    ledger_rows: int = 0
    blobs: int = 0
    manifests: int = 0
    apim_backups: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        signals = ", ".join(f"{k} {v}" for k, v in sorted(self.signals.items())) or "none"
        return [
            f"nights {self.nights}, services {self.services}, housekeeping ticks {self.ticks}",
            f"faults injected: {sum(self.faults.values())} ({faults})",
            f"scheduled starts {self.scheduled_started}, owed at the tick {self.scheduled_owed}, "
            f"caught up by housekeeping {self.catch_up_started}, on demand {self.manual_started}",
            f"throttle waits {self.throttle_waits}; unconfirmed starts {self.unconfirmed_starts} "
            f"(settled Succeeded {self.unconfirmed_succeeded}, Failed {self.unconfirmed_failed})",
            f"crashes {self.crashes}; ticks that failed (storage down, crash) {self.tick_failures}",
            f"backups: Succeeded {self.backups_succeeded}, Failed {self.backups_failed}, "
            f"Pruned {self.backups_pruned}; APIM took {self.apim_backups} backups",
            f"RPO {RPO_HOURS:g} h: breached at {self.rpo_breach_ticks} tick(s) "
            f"({self.rpo_breaches_explained} explained by an outage longer than the RPO, "
            f"{self.rpo_breaches_unexplained} unexplained); oldest newest-backup seen "
            f"{self.max_age_hours:.1f} h",
            f"signals: {signals}",
            f"at the end: ledger rows {self.ledger_rows}, blobs {self.blobs} "
            f"({self.manifests} of them manifests)",
            f"problems: {len(self.problems)}" + "".join(f"\n  - {p}" for p in self.problems),
            f"wall time {self.seconds:.1f} s",
        ]


class Year:
    def __init__(
        self, stack: LocalStack, nights: int, seed: int, trace: frozenset[date] = frozenset()
    ) -> None:
        self.stack = stack
        self.trace_days = trace
        self.tracing = False
        self.control = stack.control
        self.nights = nights
        self.rng = random.Random(seed)
        self.clock = SimClock(START)
        suffix = uuid.uuid4().hex[:8]
        env = {
            **stack.product_env(),
            "APIM_SERVICES": ",".join(stack.service_id(s) for s in SERVICES),
            "LEDGER_TABLE": f"yearledger{suffix}",
            "OPERATIONS_TABLE": f"yearops{suffix}",
            "BACKUP_CONTAINER": f"year-{suffix}",
            "RPO_HOURS": str(RPO_HOURS),
        }
        self.runtime = Runtime(Settings.from_env(env), clock=self.clock)
        self.runtime.apim.sleep = self._throttle_wait
        self.totals = Totals(nights=nights)
        self.outages: list[tuple[str, datetime, datetime]] = []  # longer than the RPO
        self.apim_ops_before = {op["id"] for op in self.control.operations()}

    # -- time --------------------------------------------------------------------------

    def _throttle_wait(self, seconds: float) -> None:
        self.totals.throttle_waits += 1
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self.clock.now += timedelta(seconds=seconds)
            self.control.advance_clock(seconds)

    def at(self, moment: datetime) -> None:
        self.advance((moment - self.clock.now).total_seconds())

    # -- faults ------------------------------------------------------------------------

    def plan(self) -> list[list[str]]:
        """Which faults on which night: every kind early (so a short run has them all),
        then about two nights in three with one or two faults."""
        nights: list[list[str]] = [[] for _ in range(self.nights)]
        kinds = list(FAULTS)
        for i, kind in enumerate(kinds):
            if 1 + i < self.nights:
                nights[1 + i].append(kind)
        for night in range(1 + len(kinds), self.nights):
            if self.rng.random() < 0.67:
                nights[night] = self.rng.sample(kinds, self.rng.choice((1, 1, 2)))
        return nights

    @contextmanager
    def crashing(self, writes: int) -> Iterator[CrashPlan]:
        plan = CrashPlan(writes)
        ledger, operations = self.runtime.ledger, self.runtime.operations
        real = ledger.table, operations.table
        ledger.table = CrashingTable(real[0], plan)  # type: ignore[assignment]
        operations.table = CrashingTable(real[1], plan)  # type: ignore[assignment]
        try:
            yield plan
        finally:
            ledger.table, operations.table = real

    @contextmanager
    def storage_down(self) -> Iterator[None]:
        ledger, operations, blobs = self.runtime.ledger, self.runtime.operations, self.runtime.blobs
        real = ledger.table, operations.table, self.runtime.__dict__["blobs"]
        ledger.table = Unreachable()  # type: ignore[assignment]
        operations.table = Unreachable()  # type: ignore[assignment]
        self.runtime.__dict__["blobs"] = Unreachable()
        try:
            yield
        finally:
            ledger.table, operations.table = real[0], real[1]
            self.runtime.__dict__["blobs"] = blobs

    def keep_busy(self, service: str, duration: timedelta) -> None:
        """Another management operation holds the service Updating for ``duration``."""
        from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters

        self.control.set_duration(duration.total_seconds())
        client = self.runtime.clients.apim(self.stack.subscription_id)
        client.api_management_service.begin_backup(
            self.stack.resource_group,
            service,
            ApiManagementServiceBackupRestoreParameters(
                storage_account=self.stack.storage_account,
                container_name="deployments",
                backup_name=f"deployment-{uuid.uuid4().hex[:8]}",
                access_type="SystemAssignedManagedIdentity",
            ),
            polling=False,
        )
        self.control.set_duration(BACKUP_SECONDS)

    def arm_start_fault(self, kind: str, service: str) -> None:
        path = f"/service/{service}/backup"
        inject = self.control.inject_fault
        if kind == "throttled-start":
            inject(method="POST", path_contains=path, status=429, retry_after=3)
            inject(method="POST", path_contains=path, status=503, retry_after=4)
        elif kind == "throttled-past-budget":
            inject(method="POST", path_contains=path, status=429, retry_after=40, times=3)
        elif kind == "start-500-taken":
            inject(method="POST", path_contains=path, status=500, accept=True)
        elif kind == "start-dropped-taken":
            inject(method="POST", path_contains=path, action="drop", accept=True)
        elif kind == "start-dropped-lost":
            inject(method="POST", path_contains=path, action="drop")
        elif kind == "start-502-lost":
            inject(method="POST", path_contains=path, status=502)
        elif kind == "throttled-poll":
            inject(method="GET", path_contains="/operationresults/", status=429, retry_after=60)
            inject(method="GET", path_contains="/operationresults/", status=503, retry_after=60)
        elif kind == "poll-dropped":
            inject(method="GET", path_contains="/operationresults/", action="drop", times=2)
        elif kind == "operation-fails":
            self.control.fail_next_operation(service, "BackupFailed", "Simulated failure")

    # -- tracing -----------------------------------------------------------------------

    def trace(self, what: str) -> None:
        """One line of what a traced day did (``--trace-night``): the tick, housekeeping,
        and every service's ledger rows and debt after it."""
        if not self.tracing:
            return
        print(f"  [{self.clock.now:%Y-%m-%d %H:%M:%S}] {what}")
        owed = debts.owed(self.runtime)
        for service in SERVICES:
            rows = [
                f"{r.backup_name.split('-')[-1]}:{r.status.value}"
                for r in self.runtime.ledger.since(service, self.clock.now - timedelta(hours=30))
            ]
            debt = owed.get(service)
            owes = (
                f"owed since {debt.since:%m-%d %H:%M} attempts {debt.attempts} "
                f"next {debt.next_attempt_at:%H:%M} op {debt.operation_id[:8] or '-'}"
                if debt
                else "no debt"
            )
            print(f"      {service}: {', '.join(rows) or 'no rows'}; {owes}")

    # -- running the product ---------------------------------------------------------

    def run_tick(self, kinds: list[str]) -> None:
        try:
            if "storage-down-tick" in kinds:
                with self.storage_down():
                    started = schedule.scheduled_backups(self.runtime)
            elif "crash-tick" in kinds:
                with self.crashing(self.rng.randint(0, 14)):
                    started = schedule.scheduled_backups(self.runtime)
            else:
                started = schedule.scheduled_backups(self.runtime)
        except Crash as crash:
            self.totals.crashes += 1
            self.totals.tick_failures += 1
            self.trace(f"scheduled tick {kinds}: crashed ({crash})")
            return
        self.trace(f"scheduled tick {kinds}: started {[s.backup.backup_name for s in started]}")
        self.totals.scheduled_started += len(started)
        self.totals.scheduled_owed += len(SERVICES) - len(started)

    def run_housekeeping(self, storage_down: bool = False, crash_at: int | None = None) -> None:
        self.totals.ticks += 1
        try:
            if storage_down:
                with self.storage_down():
                    report = housekeeping.run(self.runtime)
            elif crash_at is not None:
                with self.crashing(crash_at):
                    report = housekeeping.run(self.runtime)
            else:
                report = housekeeping.run(self.runtime)
        except Crash as crash:
            self.totals.crashes += 1
            self.totals.tick_failures += 1
            self.trace(f"housekeeping crashed ({crash})")
            return
        except ServiceRequestError:
            self.totals.tick_failures += 1
            self.trace("housekeeping: storage down")
            return
        self.trace(
            f"housekeeping: {report.summary()}; catch-up "
            f"{[(c.service, c.outcome, c.detail[:60]) for c in report.catch_up]}"
        )
        self.totals.catch_up_started += sum(c.outcome == "started" for c in report.catch_up)
        for op in report.settled:
            if op.unconfirmed:
                if op.status is Status.SUCCEEDED:
                    self.totals.unconfirmed_succeeded += 1
                else:
                    self.totals.unconfirmed_failed += 1
        for breach in report.rpo_breaches:
            self.totals.rpo_breach_ticks += 1
            if self.explained(breach.service, self.clock.now):
                self.totals.rpo_breaches_explained += 1
            else:
                self.totals.rpo_breaches_unexplained += 1
                self.totals.problems.append(
                    f"RPO breached without an explaining outage: {breach.service} at "
                    f"{self.clock.now:%Y-%m-%d %H:%M} (newest {breach.newest_backup}, "
                    f"{breach.age_hours} h)"
                )
        self.track_age()

    def explained(self, service: str, moment: datetime) -> bool:
        catch_up = timedelta(hours=RPO_HOURS)  # a day to recover after the outage ends
        return any(
            s == service and start <= moment <= end + catch_up for s, start, end in self.outages
        )

    def track_age(self) -> None:
        now = self.clock.now
        for service in SERVICES:
            newest = max(
                (
                    r.created_at
                    for r in self.runtime.ledger.records(service=service, status=Status.SUCCEEDED)
                ),
                default=None,
            )
            if newest is not None and not self.explained(service, now):
                age = (now - newest).total_seconds() / 3600
                self.totals.max_age_hours = max(self.totals.max_age_hours, age)

    def night(self, index: int, kinds: list[str]) -> None:
        day = START + timedelta(days=index)
        at_0200 = day.replace(hour=2)
        victim = self.rng.choice(SERVICES)
        self.tracing = day.date() in self.trace_days
        if self.tracing:
            print(f"night {index} ({day:%Y-%m-%d}): faults {kinds} on {victim}")
        self.totals.faults.update(kinds)
        if "service-updating" in kinds:
            self.at(at_0200 - timedelta(minutes=5))
            self.keep_busy(victim, timedelta(hours=1))
        if "long-outage" in kinds:
            self.at(at_0200 - timedelta(minutes=5))
            self.keep_busy(victim, LONG_OUTAGE)
            self.outages.append((victim, self.clock.now, self.clock.now + LONG_OUTAGE))
        self.at(at_0200)
        for kind in kinds:
            self.arm_start_fault(kind, victim)
        self.run_tick(kinds)
        for n, minutes in enumerate(TICKS):
            self.at(at_0200 + timedelta(minutes=minutes))
            if n == 0 and "crash-housekeeping" in kinds:
                self.run_housekeeping(crash_at=self.rng.randint(0, 8))
            elif n == 1 and "storage-down-housekeeping" in kinds:
                self.run_housekeeping(storage_down=True)
            else:
                self.run_housekeeping()
            if minutes == 720 and "manual-backup" in kinds:
                try:
                    backups.start_backup(self.runtime, victim, Trigger.HTTP)
                    self.totals.manual_started += 1
                except Exception as exc:  # busy, say: that is an answer, not a problem
                    logging.getLogger(__name__).info("manual backup refused: %s", exc)
        self.control.clear_faults()
        self.control.clear_requests()

    def run(self, progress: Callable[[str], None] | None = None) -> Totals:
        began = time.perf_counter()
        self.control.set_duration(BACKUP_SECONDS)
        self.control.set_retry_after(1)
        plan = self.plan()
        if self.nights >= 60:
            plan[self.nights // 2] = ["long-outage"]
        for index, kinds in enumerate(plan):
            self.night(index, kinds)
            if progress and (index + 1) % 50 == 0:
                progress(f"  night {index + 1}: {time.perf_counter() - began:.0f} s")
        # A quiet day after the last night: everything started has ended.
        end = START + timedelta(days=self.nights, hours=8)
        while self.clock.now < end:
            self.advance(3600)
            self.run_housekeeping()
        self.totals.unconfirmed_starts = (
            self.totals.unconfirmed_succeeded + self.totals.unconfirmed_failed
        )
        self.check()
        self.totals.seconds = time.perf_counter() - began
        return self.totals

    # -- the invariants ----------------------------------------------------------------

    def check(self) -> None:
        runtime, totals, problems = self.runtime, self.totals, self.totals.problems
        now = self.clock.now
        rows = list(runtime.ledger.records())
        statuses = Counter(r.status for r in rows)
        totals.ledger_rows = len(rows)
        # Pruning turns both old Succeeded and old Failed rows into Pruned: count by what
        # each row recorded when it ended.
        totals.backups_succeeded = sum(r.size_bytes is not None for r in rows)
        totals.backups_failed = sum(r.size_bytes is None and r.error is not None for r in rows)
        totals.backups_pruned = statuses[Status.PRUNED]
        container = runtime.blobs.container
        blobs = set(container.list_blob_names())
        totals.blobs = len(blobs)

        running_ops = list(runtime.operations.running())
        if running_ops:
            problems.append(f"{len(running_ops)} operation row(s) still Running")
        if statuses[Status.RUNNING]:
            problems.append(f"{statuses[Status.RUNNING]} ledger row(s) still Running")
        for lock in runtime.operations.table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": "lock"}
        ):
            holder = runtime.operations.get(str(lock["OperationId"]))
            if holder is not None and holder.is_running:
                problems.append(f"lock of {lock['RowKey']} held by a running operation")
        if debts.owed(runtime):
            problems.append(f"debts left: {sorted(debts.owed(runtime))}")
        names = {r.backup_name for r in rows}
        for r in rows:
            if r.status is Status.SUCCEEDED and r.blob_name not in blobs:
                problems.append(f"{r.backup_name} is Succeeded but its blob is gone")
        for name in blobs:
            if not is_backup_name(name) or name in names:
                continue
            if now - parse_backup_name(name).started_at > ORPHAN_MIN_AGE:
                problems.append(f"blob {name} has no row and is past the orphan rule")
        # Bounded: retention keeps about RETENTION_DAYS backups per service, each with at
        # most one manifest, and a manifest never outlives its backup's row.
        backup_blobs = {n for n in blobs if is_backup_name(n)}
        limit = len(SERVICES) * (runtime.settings.retention_days + 3)
        if len(backup_blobs) > limit:
            problems.append(f"{len(backup_blobs)} backup blobs, more than {limit}")
        by_status = {r.backup_name: r.status for r in rows}
        for name in blobs:
            owner = backup_of_manifest(name)
            if owner is not None and by_status.get(owner) in (None, Status.PRUNED):
                problems.append(f"manifest {name} outlived its backup")
        totals.manifests = sum(backup_of_manifest(n) is not None for n in blobs)
        # One start never becomes two backups; every backup APIM took has its row.
        ours = [
            op
            for op in self.control.operations()
            if op["id"] not in self.apim_ops_before
            and op["kind"] == "backup"
            and op["container"] == runtime.settings.container
        ]
        totals.apim_backups = len(ours)
        taken = Counter(op["backupName"] for op in ours)
        for name, count in taken.items():
            if count > 1:
                problems.append(f"APIM took {name} {count} times")
            if name not in names:
                problems.append(f"APIM took {name} but the ledger has no row")
        by_name = {r.backup_name: r for r in rows}
        for op in ours:
            row = by_name.get(op["backupName"])
            if (
                op["status"] == "Succeeded"
                and row is not None
                and row.status is Status.FAILED
                and row.blob_name in blobs
            ):
                problems.append(f"{row.backup_name}: APIM succeeded, the ledger says Failed")


def simulate(
    stack: LocalStack, nights: int, seed: int = 13, trace: frozenset[date] = frozenset()
) -> Totals:
    counter = SignalCounter()
    signals_log = logging.getLogger(LOGGER_NAME)
    signals_log.addHandler(counter)
    try:
        year = Year(stack, nights, seed, trace)
        totals = year.run(progress=print if nights >= 100 else None)
    finally:
        signals_log.removeHandler(counter)
    totals.signals = counter.counts
    return totals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.year", description=__doc__)
    parser.add_argument("--nights", type=int, default=400)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--trace-night",
        action="append",
        default=[],
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="print what the tick, housekeeping and the debts did that day (repeatable)",
    )
    args = parser.parse_args(argv)
    logging.getLogger().addHandler(logging.NullHandler())  # the product's own logs: quiet
    import os

    with LocalStack.start() as stack:
        os.environ["REQUESTS_CA_BUNDLE"] = stack.ca_bundle
        print(f"Simulating {args.nights} nights of {len(SERVICES)} services (seed {args.seed})")
        totals = simulate(stack, args.nights, args.seed, frozenset(args.trace_night))
    print("\n".join(totals.lines()))
    if totals.problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
