"""The driver of the simulated year: a simulated clock shared by the product and the
emulator, and each night's schedule (the scheduled tick, housekeeping ticks, faults),
run through the product's own functions against the local stack."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta

from azure.core.exceptions import ServiceRequestError

from bench.year.faults import (
    LONG_OUTAGE,
    Crash,
    CrashingTable,
    CrashPlan,
    Unreachable,
    arm_start_fault,
    plan,
)
from bench.year.totals import SignalCounter, Totals
from bench.year.world import BACKUP_SECONDS, RPO_HOURS, SERVICES, START, TICKS
from devstack.stack import LocalStack
from shared.jobs import backups, debts, housekeeping, schedule
from shared.rules.manifest import backup_of_manifest
from shared.rules.model import Status, Trigger
from shared.rules.naming import is_backup_name, parse_backup_name
from shared.rules.reconcile import ORPHAN_MIN_AGE
from shared.runtime import Runtime
from shared.settings import Settings
from shared.signals import LOGGER_NAME


class SimClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


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
            arm_start_fault(self.control, kind, victim)
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
        plan_ = plan(self.nights, self.rng)
        if self.nights >= 60:
            plan_[self.nights // 2] = ["long-outage"]
        for index, kinds in enumerate(plan_):
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
