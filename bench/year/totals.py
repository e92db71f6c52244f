"""What the simulated year counts and prints: what the product reported to the driver,
and what the oracle's record says happened (the numbers docs/reliability.md quotes)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bench.year.changes import EventCounts
from bench.year.oracle import CHECKS, Counts
from bench.year.protection import ChangePolicy
from bench.year.world import SERVICES


@dataclass
class Totals:
    nights: int = 0
    services: int = len(SERVICES)
    rpo_hours: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    # What the product's functions answered the driver:
    scheduled_started: int = 0
    scheduled_owed: int = 0
    catch_up_started: int = 0
    manual_started: int = 0
    restores_started: int = 0
    ticks: int = 0
    tick_failures: int = 0
    tick_errors: Counter[str] = field(default_factory=Counter)  # not injected: a finding
    crashes: int = 0
    throttle_waits: int = 0
    unconfirmed_succeeded: int = 0
    unconfirmed_failed: int = 0
    # What the oracle's record says:
    oracle: Counts = field(default_factory=Counts)
    signals: Counter[str] = field(default_factory=Counter)
    ledger_rows: int = 0
    blobs: int = 0
    manifests: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    by_check: Counter[str] = field(default_factory=Counter)
    change_days: Counter[str] = field(default_factory=Counter)  # by pattern
    events: EventCounts = field(default_factory=EventCounts)
    change_policy: ChangePolicy | None = None
    drill_warning_days: int = 7

    def lines(self) -> list[str]:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        signals = ", ".join(f"{k} {v}" for k, v in sorted(self.signals.items())) or "none"
        o = self.oracle
        causes = ", ".join(f"{k} {v}" for k, v in sorted(o.failure_causes.items())) or "none"
        checks = ", ".join(f"[{c}] {CHECKS[c]} {n}" for c, n in sorted(self.by_check.items()))
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.tick_errors.items()))
        days = ", ".join(f"{k} {v}" for k, v in sorted(self.change_days.items())) or "none"
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted((self.events.verdicts or {}).items()))
        return [
            f"nights {self.nights}, services {self.services}, housekeeping ticks {self.ticks}, "
            f"steps judged {o.steps}",
            f"faults injected: {sum(self.faults.values())} ({faults})",
            "the product answered:",
            f"  scheduled starts {self.scheduled_started}, owed at the tick "
            f"{self.scheduled_owed}, caught up by housekeeping {self.catch_up_started}, "
            f"on demand {self.manual_started}, restores asked {self.restores_started}",
            f"  throttle waits {self.throttle_waits}; unconfirmed starts "
            f"{self.unconfirmed_succeeded + self.unconfirmed_failed} (settled Succeeded "
            f"{self.unconfirmed_succeeded}, Failed {self.unconfirmed_failed})",
            f"  crashes {self.crashes}; ticks that failed {self.tick_failures}"
            + (f" (not injected: {errors})" if errors else ""),
            f"  signals: {signals}",
            "the oracle's record (the emulator, Azurite, the signals logger):",
            f"  APIM took {o.backups_taken} backups (Succeeded {o.backups_succeeded}, Failed "
            f"{o.backups_failed}, {o.bytes_written / 1e3:.0f} kB) and ran {o.restores} "
            f"restores (Succeeded {o.restores_succeeded}, Failed {o.restores_failed})",
            f"  blobs deleted: {o.deleted_backups} backups, {o.deleted_manifests} manifests; "
            f"ledger rows deleted by history {o.rows_deleted_by_history}",
            f"  RPO {self.rpo_hours:g} h: nights with a breach: {len(o.nights_breached_in_outage)}"
            f" in an injected outage, {len(o.nights_breached_outside)} outside; oldest "
            f"newest-restorable seen: {o.max_age_outside:.1f} h outside outages, "
            f"{o.max_age_in_outage:.1f} h in them; RpoBreached due at {o.rpo_signals_due} "
            "(tick, service)",
            f"  failure signals by cause: {causes}",
            *o.restore_times.lines(self.drill_warning_days),
            *(o.changes.lines(self.change_policy) if self.change_policy else []),
            f"  change days {sum(self.change_days.values())} ({days}); events delivered "
            f"{self.events.delivered} ({verdicts})",
            f"  at the end: ledger rows {self.ledger_rows}, blobs {self.blobs} "
            f"({self.manifests} of them manifests)",
            f"problems: {len(self.problems)}"
            + (f" ({checks})" if checks else "")
            + "".join(f"\n  - {p}" for p in self.problems),
            f"wall time {self.seconds:.1f} s",
        ]
