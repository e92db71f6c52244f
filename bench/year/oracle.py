"""The oracle: the year judged from its own record (``bench.year.record``), after every
step and at every night's end, by the rules the documentation states, re-derived from the
settings the year runs with. It never asks the product: no import of ``shared``.

Each problem carries the letter of the check that found it:

[a] RPO (after every step). Each service has a restorable backup (a blob that exists,
    from a backup APIM took and finished, younger than 30 days) no older than RPO_HOURS,
    counted from the first scheduled run for a service with none. A breach is excused
    only by an injected outage of that service that began before the deadline, until the
    product has had three housekeeping ticks after the outage's end (one may wait out its
    backoff, the next starts the catch-up, the third sees it done). And while the oracle
    sees a breach, excused or not, every housekeeping tick that ran to its end (not one
    the year broke on purpose: storage down, a crash) signals ``RpoBreached`` for that
    service: an outage is exactly when the operator must hear.
[b] Retention (every deletion, in the step it happened). No blob goes while the policy
    says keep: younger than RETENTION_DAYS and not expired (30 days); one of its
    service's MIN_KEEP newest restorable backups; read by a restore APIM was running
    throughout the step. A manifest follows its backup's rule.
[c] Ledger (every night's end, the table read raw). Every backup APIM ever took has its
    row, unless history deletion removed it as docs/ledger.md allows (``Pruned``, or
    ``Failed`` with its blob gone, started more than LEDGER_HISTORY_DAYS ago); no other
    row vanishes; a row's verdict agrees with APIM (``Succeeded`` only for a backup APIM
    finished whose blob exists; never ``Failed`` for one APIM finished whose blob exists).
[d] Failure signals (every night's end). Each row that ended ``Failed`` has exactly one
    ``BackupFailed``; each ``BackupFailed`` (and ``RestoreFailed``) has a cause in the
    record: APIM failed the operation; APIM refused the start or never saw it; the blob
    was missing; the operation timeout passed while APIM still ran it.
[e] Needless backups (every night's end). APIM never takes one name twice, nor a second
    backup of a service for one scheduled run once a backup of that run has succeeded,
    unless it was asked for on demand.
[z] The end, after a quiet day (docs/ledger.md's tables read raw): no ledger row or
    operation ``Running``, no lock held by a running operation, no debt, no backup-named
    blob without a row past 30 days, no manifest whose backup is gone, no backup blob
    older than RETENTION_DAYS (and two hours for the ticks) but the MIN_KEEP newest
    restorable of its service.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bench.year.protection import ChangeFigures, ChangeJudge, ChangePolicy
from bench.year.record import (
    MANIFEST_SUFFIX,
    ApimOperation,
    Deletion,
    Injected,
    LedgerRow,
    Record,
    SignalSeen,
    SignalTap,
    backup_of,
    named_time,
)
from bench.year.rto import RestoreFigures, judge_restores

VALIDITY = timedelta(days=30)  # APIM restores a backup for 30 days (docs/ledger.md)
RECOVERY_TICKS = 3
CHECKS = {
    "a": "RPO",
    "b": "retention",
    "c": "ledger",
    "d": "failure signals",
    "e": "needless backups",
    "f": "configuration changes",
    "r": "restores",
    "z": "the end",
}


@dataclass(frozen=True)
class Policy:
    """The settings the year runs with, as the oracle needs them."""

    services: tuple[str, ...]
    container: str
    rpo: timedelta
    retention: timedelta
    min_keep: int
    history: timedelta
    operation_timeout: timedelta
    change: ChangePolicy
    standby: tuple[str, str] | None


@dataclass(frozen=True)
class Problem:
    check: str
    at: datetime
    text: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.at:%Y-%m-%d %H:%M}: {self.text}"


@dataclass
class Counts:
    """The oracle's totals: what the record says happened."""

    backups_taken: int = 0
    backups_succeeded: int = 0
    backups_failed: int = 0
    bytes_written: int = 0
    restores: int = 0
    restores_succeeded: int = 0
    restores_failed: int = 0
    deleted_backups: int = 0
    deleted_manifests: int = 0
    rows_deleted_by_history: int = 0
    steps: int = 0
    nights_breached_in_outage: set[int] = field(default_factory=set)
    nights_breached_outside: set[int] = field(default_factory=set)
    max_age_outside: float = 0.0  # hours: the oldest newest-restorable seen, no outage
    max_age_in_outage: float = 0.0
    rpo_signals_due: int = 0  # (tick, service) pairs in breach that must signal
    failure_causes: Counter[str] = field(default_factory=Counter)
    changes: ChangeFigures = field(default_factory=ChangeFigures)
    restore_times: RestoreFigures = field(default_factory=RestoreFigures)


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 1)


class Oracle:
    def __init__(self, record: Record, policy: Policy, injected: Injected, tap: SignalTap) -> None:
        self.record = record
        self.policy = policy
        self.injected = injected
        self.tap = tap
        self.problems: list[Problem] = []
        self.counts = Counts()
        self.night = 0
        self._said: set[tuple[str, ...]] = set()
        self._signals_judged = 0
        self._pending: list[tuple[SignalSeen, bool]] = []  # failure signals, blob there?
        self._rows_before: dict[str, LedgerRow] = {}
        self._history_deleted: set[str] = set()
        self._final: set[str] = set()  # operations counted and judged for [e]
        self.changes = ChangeJudge(record, injected, policy.change)
        self.counts.changes = self.changes.figures

    # -- reporting --------------------------------------------------------------------

    def _problem(self, check: str, at: datetime, text: str, *key: str) -> None:
        """Record a problem once per key (a breach lasts many steps: said once a night)."""
        said = (check, *key) if key else (check, text)
        if said in self._said:
            return
        self._said.add(said)
        self.problems.append(Problem(check, at, text))

    def _keyed(self, check: str, at: datetime, text: str, key: tuple[str, ...]) -> None:
        self._problem(check, at, text, *key)

    def by_check(self) -> Counter[str]:
        return Counter(p.check for p in self.problems)

    # -- after every step -------------------------------------------------------------

    def after_step(self, step: str, began: datetime, now: datetime, rpo_signal: bool) -> None:
        """``rpo_signal``: the step was a housekeeping tick the year did not break on
        purpose (storage down, a crash), so each service the oracle sees in breach must
        have been signalled in it, whatever else went wrong in the tick."""
        self.counts.steps += 1
        gone = self.record.observe(step, began, now)
        for deletion in gone:
            self._judge_deletion(deletion)
        signals = self.tap.seen[self._signals_judged :]
        self._signals_judged += len(signals)
        for seen in signals:
            if seen.name in ("BackupFailed", "RestoreFailed"):
                name = str(seen.fields.get("backupName", ""))
                there = name in self.record.present or name in self.record.before
                self._pending.append((seen, there))
        self._judge_rpo(now, [s for s in signals if s.name == "RpoBreached"], rpo_signal)
        self.changes.after_step(now, self._keyed)

    def restorable(self, service: str, at: datetime) -> list[ApimOperation]:
        """``service``'s restorable backups now, newest first."""
        return self._restorable(service, at, self.record.present)

    def _restorable(
        self, service: str, at: datetime, blobs: set[str], limit: int | None = None
    ) -> list[ApimOperation]:
        """Newest first, at most ``limit``: backups APIM finished, blob in ``blobs``,
        younger than 30 days at ``at``."""
        found: list[ApimOperation] = []
        for op in self.record.backups_of(service):
            if at - op.taken_at >= VALIDITY:
                break  # newest first: the rest are older still
            if op.succeeded and op.backup_name in blobs and op.taken_at <= at:
                found.append(op)
                if limit is not None and len(found) >= limit:
                    break
        return found

    def _judge_rpo(self, now: datetime, signals: list[SignalSeen], must_signal: bool) -> None:
        if not self.injected.runs:
            return  # before the first scheduled run nothing is promised
        present = self.record.present
        signalled = {str(s.fields.get("service")) for s in signals}
        for service in self.policy.services:
            restorable = self._restorable(service, now, present, limit=1)
            newest = restorable[0] if restorable else None
            since = newest.taken_at if newest else self.injected.runs[0]
            deadline = since + self.policy.rpo
            excused = self._excused(service, deadline, now)
            age = _hours(now - since)
            if excused:
                self.counts.max_age_in_outage = max(self.counts.max_age_in_outage, age)
            else:
                self.counts.max_age_outside = max(self.counts.max_age_outside, age)
            if now <= deadline:
                continue
            what = f"newest restorable {newest.backup_name}" if newest else "no restorable backup"
            if excused:
                self.counts.nights_breached_in_outage.add(self.night)
            else:
                self.counts.nights_breached_outside.add(self.night)
                self._problem(
                    "a",
                    now,
                    f"{service}: {what}, {age} h old, past RPO_HOURS "
                    f"({_hours(self.policy.rpo)} h) outside any injected outage",
                    service,
                    str(self.night),
                )
            if must_signal:
                self.counts.rpo_signals_due += 1
                if service not in signalled:
                    self._problem(
                        "a",
                        now,
                        f"{service}: {what}, {age} h old, past the RPO"
                        f"{' (in an injected outage)' if excused else ''}, but the "
                        "housekeeping tick signalled no RpoBreached for it",
                        "signal",
                        service,
                        str(self.night),
                    )

    def _excused(self, service: str, deadline: datetime, now: datetime) -> bool:
        for outage in self.injected.outages:
            if outage.service != service or outage.start >= deadline:
                continue
            ticks = sum(outage.end < t <= now for t in self.injected.housekeeping)
            if now <= outage.end or ticks < RECOVERY_TICKS:
                return True
        return False

    def _judge_deletion(self, deletion: Deletion) -> None:
        name = backup_of(deletion.name)
        manifest = name != deletion.name
        if manifest:
            self.counts.deleted_manifests += 1
        else:
            self.counts.deleted_backups += 1
        ops = self.record.backups_named(name)
        if not ops:
            self._problem(
                "b", deletion.by, f"{deletion.name} deleted ({deletion.step}): no backup "
                "APIM took explains this blob",
            )  # fmt: skip
            return
        backup = ops[0]
        what = f"{deletion.name} (the manifest of {name})" if manifest else deletion.name
        age = deletion.by - backup.taken_at
        policy = self.policy
        if age <= policy.retention and age < VALIDITY:
            self._problem(
                "b",
                deletion.by,
                f"{what} deleted ({deletion.step}) at {_hours(age)} h old: RETENTION_DAYS="
                f"{policy.retention.days} keeps it until "
                f"{backup.taken_at + policy.retention:%Y-%m-%d %H:%M}",
            )
        elif backup.succeeded:
            blobs = self.record.before | self.record.present
            newest = self._restorable(backup.service, deletion.by, blobs, policy.min_keep)
            if backup in newest:
                self._problem(
                    "b",
                    deletion.by,
                    f"{what} deleted ({deletion.step}): it is one of the MIN_KEEP="
                    f"{policy.min_keep} newest restorable backups of {backup.service} "
                    f"({', '.join(op.backup_name for op in newest)})",
                )
        for restore in self.record.restores():
            if (
                restore.backup_name == name
                and restore.started_at <= deletion.after
                and restore.due_at > deletion.by
            ):
                self._problem(
                    "b",
                    deletion.by,
                    f"{what} deleted ({deletion.step}) while APIM was restoring it into "
                    f"{restore.service} ({restore.started_at:%H:%M} to {restore.due_at:%H:%M})",
                )

    # -- at every night's end ------------------------------------------------------

    def night_end(self, now: datetime) -> None:
        self.record.read_starts()
        rows = self.record.read_ledger_rows()
        self._judge_ledger(rows, now)
        self._judge_failures(now)
        self._judge_needless(now)
        self._rows_before = rows

    def _judge_ledger(self, rows: dict[str, LedgerRow], now: datetime) -> None:
        present = self.record.present
        cutoff = now - self.policy.history
        for name, last in self._rows_before.items():
            if name in rows:
                continue
            taken = named_time(name)
            deletable = last.status == "Pruned" or (last.status == "Failed" and name not in present)
            if deletable and taken is not None and taken < cutoff:
                self._history_deleted.add(name)
                self.counts.rows_deleted_by_history += 1
                continue
            self._problem(
                "c",
                now,
                f"the ledger row of {name} was deleted (it was {last.status}); docs/ledger.md "
                f"deletes only Pruned, or Failed without a blob, rows older than "
                f"{self.policy.history.days} days",
                name,
                "vanished",
            )
        by_name: dict[str, list[ApimOperation]] = defaultdict(list)
        for op in self.record.backups():
            by_name[op.backup_name].append(op)
        for name, ops in by_name.items():
            row = rows.get(name)
            if row is None:
                if name not in self._history_deleted and name not in self._rows_before:
                    self._problem(
                        "c",
                        now,
                        f"APIM took {name} at {ops[0].started_at:%Y-%m-%d %H:%M:%S}; the "
                        "ledger has no row for it",
                        name,
                        "missing",
                    )
                continue
            finished = any(op.succeeded for op in ops) and name in present
            if row.status == "Failed" and finished:
                self._problem(
                    "c", now, f"{name}: APIM finished it and its blob is there; the ledger "
                    "says Failed", name, "failed",
                )  # fmt: skip
            if row.status == "Succeeded" and not any(op.succeeded for op in ops):
                self._problem(
                    "c", now, f"{name}: the ledger says Succeeded; APIM's operation is "
                    f"{ops[0].status}", name, "succeeded",
                )  # fmt: skip
        for name, row in rows.items():
            if row.status == "Succeeded" and name not in by_name:
                self._problem(
                    "c", now, f"{name}: the ledger says Succeeded; APIM never took it",
                    name, "untaken",
                )  # fmt: skip
            elif row.status == "Succeeded" and name not in present:
                self._problem(
                    "c", now, f"{name}: the ledger says Succeeded; its blob is gone",
                    name, "blobless",
                )  # fmt: skip

    def _judge_failures(self, now: datetime) -> None:
        signalled: Counter[str] = Counter(
            str(s.fields.get("backupName")) for s in self.tap.seen if s.name == "BackupFailed"
        )
        for name, row in self.record.ever.items():
            if row.ended_failed and signalled[name] != 1:
                self._problem(
                    "d",
                    now,
                    f"{name} ended Failed ({row.error[:80]!r}) with {signalled[name]} "
                    "BackupFailed signal(s), not exactly one",
                    name,
                    str(signalled[name]),
                )
        for name, count in signalled.items():
            if count > 1:
                self._problem(
                    "d", now, f"{count} BackupFailed signals for {name}", name, str(count)
                )
        pending, self._pending = self._pending, []
        for seen, blob_there in pending:
            cause = self._cause(seen, blob_there)
            if cause is None:
                self._problem(
                    "d",
                    seen.at,
                    f"{seen.name} for {seen.fields.get('backupName')} ({seen.step}, error "
                    f"{str(seen.fields.get('error'))[:100]!r}) has no cause in the record: "
                    "APIM took and finished it, its blob is there",
                )
            else:
                self.counts.failure_causes[f"{seen.name}: {cause}"] += 1

    def _cause(self, seen: SignalSeen, blob_there: bool) -> str | None:
        name = str(seen.fields.get("backupName", ""))
        kind = "backup" if seen.name == "BackupFailed" else "restore"
        service = str(seen.fields.get("service", "")).lower()
        ops = [
            op
            for op in self.record.operations.values()
            if op.kind == kind
            and op.backup_name == name
            and op.container == self.policy.container
            and (kind == "backup" or op.service == service)
        ]
        if any(op.failed for op in ops):
            return "APIM failed it"
        if ops:
            running = [op for op in ops if op.due_at > seen.at or op.status == "Running"]
            if running:
                if seen.at - running[0].started_at >= self.policy.operation_timeout:
                    return "the operation timeout passed"
                return None
            if kind == "backup" and not blob_there:
                return "APIM finished it, the blob was missing"
            return None
        starts = [
            s
            for s in self.record.starts
            if s.kind == kind
            and s.backup_name == name
            and (kind == "backup" or s.service == service)
        ]
        if any(s.taken for s in starts):
            return None  # taken, yet no operation: the record itself is wrong
        if starts:
            return "APIM refused the start or never received it"
        return "the start never reached APIM"

    def _judge_needless(self, now: datetime) -> None:
        ours = self.record.backups()
        taken = Counter(op.backup_name for op in ours)
        for name, count in taken.items():
            if count > 1:
                self._problem("e", now, f"APIM took {name} {count} times", name)
        by_service: dict[str, list[ApimOperation]] = defaultdict(list)
        for op in sorted(ours, key=lambda op: op.started_at):
            by_service[op.service].append(op)
        for op in ours:
            if op.id in self._final or op.status == "Running":
                continue
            self._final.add(op.id)
            self._count(op)
            if op.backup_name in self.injected.on_demand or self.changes.explained_by_change(op):
                continue
            runs = [t for t in self.injected.runs if t <= op.started_at]
            if not runs:
                continue
            run = runs[-1]
            for earlier in by_service[op.service]:
                if earlier.started_at >= op.started_at:
                    break
                done = earlier.succeeded and earlier.due_at <= op.started_at
                if earlier.started_at >= run and done:
                    self._problem(
                        "e",
                        op.started_at,
                        f"APIM took {op.backup_name} for the run of {run:%Y-%m-%d %H:%M:%S.%f}"
                        f"; {earlier.backup_name} of that run had already succeeded",
                        op.backup_name,
                    )
                    break
        for op in self.record.restores():
            if op.id not in self._final and op.status != "Running":
                self._final.add(op.id)
                self._count(op)

    def _count(self, op: ApimOperation) -> None:
        counts = self.counts
        if op.kind == "restore":
            counts.restores += 1
            counts.restores_succeeded += op.succeeded
            counts.restores_failed += op.failed
            return
        counts.backups_taken += 1
        counts.backups_succeeded += op.succeeded
        counts.backups_failed += op.failed
        counts.bytes_written += op.size or 0

    # -- at the end -------------------------------------------------------------------

    def finish(self, now: datetime, retention_days: int) -> None:
        """The quiet day is over: everything started has ended ([z])."""
        rows = self.record.ledger
        for name, row in rows.items():
            if row.status == "Running":
                self._problem("z", now, f"ledger row {name} still Running")
        entities = list(self.record.read_operations())
        operations = {str(e["RowKey"]): e for e in entities if e["PartitionKey"] == "operation"}
        for key, entity in operations.items():
            if entity.get("Status") == "Running":
                self._problem("z", now, f"operation {key} still Running")
        for entity in entities:
            if entity["PartitionKey"] == "lock":
                holder = operations.get(str(entity.get("OperationId")))
                if holder is not None and holder.get("Status") == "Running":
                    self._problem("z", now, f"the lock of {entity['RowKey']} is held")
            elif entity["PartitionKey"] == "owed":
                self._problem("z", now, f"{entity['RowKey']} still owes a backup")
        present = self.record.present
        keep = {
            op.backup_name
            for service in self.policy.services
            for op in self._restorable(service, now, present, self.policy.min_keep)
        }
        # Pruning runs every housekeeping tick; the quiet day's ticks are an hour apart.
        overdue = timedelta(days=retention_days) + timedelta(hours=2)
        for name in present:
            taken = named_time(name)
            if name.endswith(MANIFEST_SUFFIX):
                owner = rows.get(backup_of(name))
                if owner is None or owner.status == "Pruned":
                    self._problem("z", now, f"manifest {name} outlived its backup")
            elif taken is not None:
                if name not in rows and now - taken > VALIDITY:
                    self._problem("z", now, f"blob {name} has no row and is past 30 days")
                elif now - taken > overdue and name not in keep:
                    self._problem(
                        "z",
                        now,
                        f"blob {name} is {_hours(now - taken)} h old, past RETENTION_DAYS="
                        f"{retention_days}, and not one of its service's MIN_KEEP="
                        f"{self.policy.min_keep} newest restorable backups",
                    )
        self.changes.finish(self.policy.services, self._keyed)
        self.counts.restore_times = judge_restores(
            self.record.restores(),
            self.tap.outcomes,
            self.injected,
            [e for e in entities if e["PartitionKey"] == "drill"],
            self.policy.standby,
            lambda check, at, text: self._problem(check, at, text),
        )
