"""The driver of the simulated year: a simulated clock shared by the product and the
emulator (stopped, so both read the same time), and each night's schedule (the scheduled
tick, housekeeping ticks, standby sync, faults), run through the product's own functions
against the local stack. After every step it hands the oracle the step's bounds; at every
night's end, the night. It judges nothing itself."""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError, ServiceRequestError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from bench.year.changes import TICK, Changes, plan_day
from bench.year.faults import (
    FAULTS,
    LONG_OUTAGE,
    RESTORE_MINUTES,
    Crash,
    CrashingTable,
    CrashPlan,
    ListingRefused,
    LosingTable,
    Unreachable,
    WritePredicate,
    arm_start_fault,
    ledger_verdict_of,
    operation_row_of,
    operation_url_of,
    plan,
)
from bench.year.oracle import Oracle, Policy
from bench.year.protection import ChangePolicy
from bench.year.record import Injected, Outage, Record, SignalTap
from bench.year.totals import Totals
from bench.year.world import (
    BACKUP_SECONDS,
    DEFAULTS,
    RESTORE_PAIRS,
    SERVICES,
    STANDBY_AT,
    START,
    TICKS,
    YearSettings,
)
from devstack.stack import LocalStack
from shared.jobs import backups, debts, housekeeping, restores, schedule
from shared.rules.model import Status, Trigger
from shared.runtime import Runtime
from shared.settings import Settings

log = logging.getLogger(__name__)

CHANGE_DAY_BEFORE = 720  # the change day runs before this tick (14:00), after 05:00's


class SimClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _listing(container: ContainerClient) -> list[str]:
    try:
        return list(container.list_blob_names())
    except ResourceNotFoundError:
        return []  # APIM creates the container with the first backup


def _entities(table: TableClient) -> Iterable[dict[str, Any]]:
    try:
        return list(table.list_entities())
    except ResourceNotFoundError:
        return []  # the product creates its tables on first use


class Year:
    def __init__(
        self,
        stack: LocalStack,
        nights: int,
        seed: int,
        settings: YearSettings = DEFAULTS,
        kinds: tuple[str, ...] = FAULTS,
        trace: frozenset[date] = frozenset(),
    ) -> None:
        self.stack = stack
        self.trace_days = trace
        self.tracing = False
        self.control = stack.control
        self.nights = nights
        self.kinds = kinds
        self.settings = settings
        self.rng = random.Random(seed)
        self.clock = SimClock(START)
        self.control.set_clock(START.isoformat())
        suffix = uuid.uuid4().hex[:8]
        env = {
            **stack.product_env(),
            "APIM_SERVICES": ",".join(stack.service_id(s) for s in SERVICES),
            "LEDGER_TABLE": f"yearledger{suffix}",
            "OPERATIONS_TABLE": f"yearops{suffix}",
            "BACKUP_CONTAINER": f"year-{suffix}",
            **settings.env(),
        }
        self.runtime = Runtime(Settings.from_env(env), clock=self.clock)
        self.runtime.apim.sleep = self._throttle_wait
        self.totals = Totals(nights=nights, rpo_hours=settings.rpo_hours)
        # The oracle's side: its own clients, reading raw what anyone may read.
        tables = TableServiceClient.from_connection_string(stack.connection_string)
        self.ops_table = tables.get_table_client(env["OPERATIONS_TABLE"])
        ledger = tables.get_table_client(env["LEDGER_TABLE"])
        container = BlobServiceClient.from_connection_string(
            stack.connection_string
        ).get_container_client(env["BACKUP_CONTAINER"])
        self.injected = Injected()
        self.tap = SignalTap(self.clock)
        self.record = Record(
            control=self.control,
            container=env["BACKUP_CONTAINER"],
            list_blobs=lambda: _listing(container),
            read_ledger=lambda: _entities(ledger),
            read_operations=lambda: _entities(self.ops_table),
            since=START,
        )
        policy = Policy(
            services=SERVICES,
            container=env["BACKUP_CONTAINER"],
            rpo=settings.rpo,
            retention=timedelta(days=settings.retention_days),
            min_keep=settings.min_keep,
            history=timedelta(days=settings.ledger_history_days),
            operation_timeout=timedelta(minutes=settings.operation_timeout_minutes),
            change=ChangePolicy(
                max_delay=timedelta(minutes=settings.change_max_delay_minutes),
                per_day=settings.change_backups_per_day,
                tick=TICK,
                backup=timedelta(seconds=BACKUP_SECONDS),
            ),
            standby=settings.standby,
        )
        self.oracle = Oracle(self.record, policy, self.injected, self.tap)
        self.changes = Changes(self)
        self.change_rng = random.Random(seed + 1)  # the faults' year stays as it was
        self.refused_until: datetime | None = None  # outage-listing-refused

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

    def observe(self, step: str, began: datetime, rpo_signal: bool = False) -> None:
        self.changes.deliver()  # the events the step published, as Event Grid would
        self.oracle.after_step(step, began, self.clock.now, rpo_signal)

    def begin(self, step: str) -> datetime:
        self.tap.step = f"{step} at {self.clock.now:%Y-%m-%d %H:%M:%S}"
        return self.clock.now

    # -- faults ------------------------------------------------------------------------

    @contextmanager
    def crashing(self, crash: CrashPlan) -> Iterator[CrashPlan]:
        ledger, operations = self.runtime.ledger, self.runtime.operations
        real = ledger.table, operations.table
        ledger.table = CrashingTable(real[0], crash, "ledger")  # type: ignore[assignment]
        operations.table = CrashingTable(real[1], crash, "operations")  # type: ignore[assignment]
        try:
            yield crash
        finally:
            ledger.table, operations.table = real

    @contextmanager
    def losing(self, when: WritePredicate) -> Iterator[None]:
        operations = self.runtime.operations
        real = operations.table
        operations.table = LosingTable(real, "operations", when)  # type: ignore[assignment]
        try:
            yield
        finally:
            operations.table = real

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

    @contextmanager
    def listing_refused(self) -> Iterator[None]:
        blobs = self.runtime.blobs
        real = blobs.container
        blobs.container = ListingRefused(real)  # type: ignore[assignment]
        try:
            yield
        finally:
            blobs.container = real

    def keep_busy(self, service: str, duration: timedelta, kind: str) -> None:
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
        now = self.clock.now
        self.injected.outages.append(Outage(service, now, now + duration, kind))

    def add_unreadable_row(self, service: str) -> str:
        """An operation row of a Kind this version does not know (a newer version wrote
        it, or a hand edit): Running, on ``service``."""
        key = uuid.uuid4().hex
        self.ops_table.create_entity(
            {
                "PartitionKey": "operation",
                "RowKey": key,
                "Kind": "snapshot",
                "Service": service,
                "ServiceId": self.stack.service_id(service),
                "BackupName": f"{service}-snapshot",
                "Status": "Running",
                "Trigger": "http",
                "CreatedAt": self.clock.now,
            }
        )
        return key

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

    def run_tick(self, kinds: list[str], victim: str) -> None:
        began = self.begin("scheduled tick")
        self.injected.runs.append(began)
        try:
            if "storage-down-tick" in kinds:
                with self.storage_down():
                    started = schedule.scheduled_backups(self.runtime)
            elif "crash-tick" in kinds:
                with self.crashing(CrashPlan(self.rng.randint(0, 14))):
                    started = schedule.scheduled_backups(self.runtime)
            elif "crash-after-ledger-row" in kinds:
                with self.crashing(CrashPlan(0, when=operation_row_of(victim))):
                    started = schedule.scheduled_backups(self.runtime)
            elif "debt-after-accept" in kinds:
                with self.losing(operation_url_of(victim)):
                    started = schedule.scheduled_backups(self.runtime)
            else:
                started = schedule.scheduled_backups(self.runtime)
        except Crash as crash:
            self.totals.crashes += 1
            self.totals.tick_failures += 1
            self.trace(f"scheduled tick {kinds}: crashed ({crash})")
        else:
            names = [s.backup.backup_name for s in started]
            self.trace(f"scheduled tick {kinds}: started {names}")
            self.totals.scheduled_started += len(started)
            self.totals.scheduled_owed += len(SERVICES) - len(started)
        self.observe("scheduled tick", began)

    def run_housekeeping(
        self,
        storage_down: bool = False,
        crash: CrashPlan | None = None,
    ) -> None:
        began = self.begin("housekeeping")
        self.totals.ticks += 1
        self.injected.housekeeping.append(began)
        refused = self.refused_until is not None and began <= self.refused_until
        try:
            with contextlib.ExitStack() as stack:
                if storage_down:
                    stack.enter_context(self.storage_down())
                elif crash is not None:
                    stack.enter_context(self.crashing(crash))
                if refused:
                    stack.enter_context(self.listing_refused())
                report = housekeeping.run(self.runtime)
        except Crash as crash_:
            self.totals.crashes += 1
            self.totals.tick_failures += 1
            self.trace(f"housekeeping crashed ({crash_})")
        except Exception as exc:  # the host logs it and the next tick runs: the oracle judges
            self.totals.tick_failures += 1
            if not (storage_down and isinstance(exc, ServiceRequestError)):
                self.totals.tick_errors[type(exc).__name__] += 1
            self.trace(f"housekeeping failed: {type(exc).__name__}: {exc}")
        else:
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
        # A tick the year broke on purpose (storage gone, the process killed) cannot be
        # asked to signal; any other must, whatever else went wrong in it.
        self.observe("housekeeping", began, rpo_signal=not storage_down and crash is None)

    def run_standby(self) -> None:
        began = self.begin("standby sync")
        started = restores.standby_sync(self.runtime)
        self.injected.standby_syncs.append((began, self.clock.now))
        self.totals.restores_started += len(started)
        self.trace(f"standby sync: {[op.backup_name for op in started]}")
        self.observe("standby sync", began)

    def run_restore(self, victim: str) -> None:
        """restore-while-pruning: the source's oldest restorable backup, as the oracle's
        record knows it, into the other Developer service, for 25 minutes."""
        source = victim if victim in RESTORE_PAIRS else "contoso-apim"
        target = RESTORE_PAIRS[source]
        candidates = self.oracle.restorable(source, self.clock.now)
        if not candidates:
            return
        began = self.begin("restore")
        request = restores.RestoreRequest(candidates[-1].backup_name, self.stack.service_id(target))
        self.control.set_duration(RESTORE_MINUTES * 60)
        try:
            restores.start_restore(self.runtime, request, Trigger.HTTP)
            self.totals.restores_started += 1
        except Exception as exc:  # refused: that is an answer, not a problem
            log.info("restore refused: %s", exc)
        finally:
            self.control.set_duration(BACKUP_SECONDS)
        self.trace(f"restore of {request.backup_name} into {target}")
        self.observe("restore", began)

    def run_manual(self, victim: str) -> None:
        began = self.begin("on-demand backup")
        try:
            started = backups.start_backup(self.runtime, victim, Trigger.HTTP)
        except Exception as exc:  # busy, say: that is an answer, not a problem
            log.info("manual backup refused: %s", exc)
        else:
            self.injected.on_demand.add(started.backup.backup_name)
            self.totals.manual_started += 1
        self.observe("on-demand backup", began)

    def night(self, index: int, kinds: list[str]) -> None:
        day = START + timedelta(days=index)
        at_0200 = day.replace(hour=2)
        victim = self.rng.choice(SERVICES)
        change_day = plan_day(index, victim, SERVICES, self.change_rng)
        self.oracle.night = index
        self.tracing = day.date() in self.trace_days
        if self.tracing:
            print(f"night {index} ({day:%Y-%m-%d}): faults {kinds} on {victim}")
        self.totals.faults.update(kinds)
        unreadable = None
        if "unreadable-operation-row" in kinds:
            self.at(at_0200 - timedelta(hours=1))
            unreadable = self.add_unreadable_row(victim)
        if "restore-while-pruning" in kinds:
            self.at(at_0200 - timedelta(minutes=10))
            self.run_restore(victim)
        if "service-updating" in kinds:
            self.at(at_0200 - timedelta(minutes=5))
            self.keep_busy(victim, timedelta(hours=1), "service-updating")
        if "long-outage" in kinds or "outage-listing-refused" in kinds:
            self.at(at_0200 - timedelta(minutes=5))
            kind = "long-outage" if "long-outage" in kinds else "outage-listing-refused"
            self.keep_busy(victim, LONG_OUTAGE, kind)
            if kind == "outage-listing-refused":
                self.refused_until = self.clock.now + LONG_OUTAGE
        if "early-timer" in kinds:
            self.at(at_0200 - timedelta(milliseconds=4))  # ...01:59:59.996, as hosts do
        else:
            self.at(at_0200)
        for kind in kinds:
            arm_start_fault(self.control, kind, victim)
        self.run_tick(kinds, victim)
        for n, minutes in enumerate(TICKS):
            if change_day is not None and minutes == CHANGE_DAY_BEFORE:
                self.totals.change_days.update([change_day.pattern])
                self.changes.run_day(change_day, day, self.run_housekeeping)
            self.at(at_0200 + timedelta(minutes=minutes))
            if minutes == STANDBY_AT and self.settings.standby:
                self.run_standby()
            if n == 0 and "crash-housekeeping" in kinds:
                self.run_housekeeping(crash=CrashPlan(self.rng.randint(0, 8)))
            elif n == 1 and "storage-down-housekeeping" in kinds:
                self.run_housekeeping(storage_down=True)
            elif minutes == 15 and "fails-after-first-check" in kinds:
                # The poll that sees the failure; the process dies right after the
                # operation's verdict is stored, before the ledger row and the debt.
                self.run_housekeeping(crash=CrashPlan(0, when=ledger_verdict_of(victim)))
            else:
                self.run_housekeeping()
            if minutes == 720 and "manual-backup" in kinds:
                self.run_manual(victim)
        if unreadable is not None:
            self.ops_table.delete_entity("operation", unreadable)  # an operator removed it
        self.control.clear_faults()
        self.oracle.night_end(self.clock.now)  # reads the request log: before clearing it
        self.control.clear_requests()

    def run(self, progress: Callable[[str], None] | None = None) -> Totals:
        began = time.perf_counter()
        self.control.set_duration(BACKUP_SECONDS)
        self.control.set_retry_after(1)
        with self.tap:
            for index, kinds in enumerate(plan(self.nights, self.rng, self.kinds)):
                self.night(index, kinds)
                if progress and (index + 1) % 50 == 0:
                    progress(f"  night {index + 1}: {time.perf_counter() - began:.0f} s")
            # A quiet day after the last night: everything started has ended.
            self.oracle.night = self.nights
            self.injected.runs.append(START + timedelta(days=self.nights, hours=2))  # no timer
            end = START + timedelta(days=self.nights, hours=8)
            while self.clock.now < end:
                self.advance(3600)
                self.run_housekeeping()
            self.oracle.night_end(self.clock.now)
            self.oracle.finish(self.clock.now, self.settings.retention_days)
        self.control.clear_requests()
        self._sum_up()
        self.totals.seconds = time.perf_counter() - began
        return self.totals

    def _sum_up(self) -> None:
        totals, record = self.totals, self.record
        totals.oracle = self.oracle.counts
        totals.problems = [str(p) for p in self.oracle.problems]
        totals.by_check = self.oracle.by_check()
        totals.signals.update(s.name for s in self.tap.seen)
        totals.ledger_rows = len(record.ledger)
        totals.blobs = len(record.present)
        totals.manifests = sum(n.endswith(".manifest.json") for n in record.present)
        totals.events = self.changes.counts
        totals.change_policy = self.oracle.policy.change
        totals.drill_warning_days = self.settings.drill_warning_days


def simulate(
    stack: LocalStack,
    nights: int,
    seed: int = 13,
    settings: YearSettings = DEFAULTS,
    kinds: tuple[str, ...] = FAULTS,
    trace: frozenset[date] = frozenset(),
) -> Totals:
    year = Year(stack, nights, seed, settings, kinds, trace)
    return year.run(progress=print if nights >= 100 else None)
