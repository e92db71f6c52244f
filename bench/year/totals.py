"""What the simulated year counts and prints."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from bench.year.world import RPO_HOURS, SERVICES


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
