"""The year's restores judged, and their recovery times measured, from the record alone
(part of the oracle: no import of the product).

[r] Restores (at the end). Every restore APIM ran to its end has exactly one outcome
    record (docs/timers-and-signals.md, "Outcome records") with APIM's verdict, started
    no later than APIM started it and completed no earlier than APIM finished it (the
    product cannot know of an end before it happens); no outcome record says a restore
    succeeded that APIM did not run. The standby pair's drill row (docs/ledger.md,
    "Restore drills", the operations table read raw) names the last drill APIM ran for
    the pair, with its verdict.

Figures: the recovery time of each restore as APIM ran it (start to end) and as the
product measured it (its outcome record's ``durationSeconds``: from the request to the
verdict, which waits for a housekeeping poll), and the drills: standby-sync restores,
those that succeeded, and the longest stretch without a successful one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from statistics import quantiles
from typing import Any

from bench.year.record import ApimOperation, Injected, OutcomeSeen

Report = Callable[[str, datetime, str], None]  # check, when, what


def distribution(values: list[float]) -> str:
    """``n, min, p50, p95, max`` of ``values`` (seconds), as minutes."""
    if not values:
        return "none"
    ordered = sorted(values)
    p50, p95 = (ordered[0], ordered[0]) if len(ordered) == 1 else _p50_p95(ordered)
    return (
        f"{len(ordered)}: min {ordered[0] / 60:.1f}, p50 {p50 / 60:.1f}, p95 {p95 / 60:.1f}, "
        f"max {ordered[-1] / 60:.1f} min"
    )


def _p50_p95(ordered: list[float]) -> tuple[float, float]:
    cuts = quantiles(ordered, n=20, method="inclusive")  # 19 cut points: 5 %, ..., 95 %
    return cuts[9], cuts[18]


@dataclass
class RestoreFigures:
    apim_seconds: list[float] = field(default_factory=list)  # APIM's start to end
    product_seconds: list[float] = field(default_factory=list)  # the outcome records'
    drills: int = 0
    drills_succeeded: int = 0
    longest_without_drill: timedelta = timedelta(0)  # between successful drills

    def lines(self, drill_warning_days: int) -> list[str]:
        gap = self.longest_without_drill.total_seconds() / 86400
        return [
            f"  restores, RTO as APIM ran them: {distribution(self.apim_seconds)}",
            f"  restores, RTO as the product measured them (request to verdict): "
            f"{distribution(self.product_seconds)}",
            f"  drills (standby sync): {self.drills}, succeeded {self.drills_succeeded}; "
            f"longest stretch without a successful drill {gap:.1f} days "
            f"(DRILL_WARNING_DAYS {drill_warning_days})",
        ]


def _match(op: ApimOperation, outcomes: list[OutcomeSeen]) -> list[OutcomeSeen]:
    """The outcome records that can be APIM's restore ``op``: same backup and target,
    a request before APIM began it and a verdict after (or at) its end."""
    return [
        o
        for o in outcomes
        if o.backup_name == op.backup_name
        and o.target == op.service
        and o.started_at <= op.started_at <= o.completed_at
    ]


def judge_restores(
    restores: Iterable[ApimOperation],
    outcomes: Iterable[OutcomeSeen],
    injected: Injected,
    drill_rows: Iterable[dict[str, Any]],
    standby: tuple[str, str] | None,
    report: Report,
) -> RestoreFigures:
    figures = RestoreFigures()
    records = [o for o in outcomes if o.kind == "restore"]
    matched: set[int] = set()
    ended = [op for op in restores if op.completed_at is not None]
    for op in ended:  # APIM's end is its due time (the emulator notes it when next asked)
        figures.apim_seconds.append((op.due_at - op.started_at).total_seconds())
        candidates = _match(op, records)
        if len(candidates) != 1:
            report(
                "r",
                op.due_at,
                f"APIM's restore of {op.backup_name} into {op.service} ended {op.status}; "
                f"{len(candidates)} outcome records explain it, not exactly one",
            )
            continue
        seen = candidates[0]
        matched.add(id(seen))
        figures.product_seconds.append(seen.duration_seconds)
        if seen.status != op.status:
            report(
                "r",
                seen.completed_at,
                f"the restore of {op.backup_name} into {op.service}: APIM says {op.status}, "
                f"the outcome record {seen.status}",
            )
        if seen.completed_at < op.due_at:
            report(
                "r",
                seen.completed_at,
                f"the restore of {op.backup_name} into {op.service} was recorded ended at "
                f"{seen.completed_at:%H:%M:%S}, before APIM ended it ({op.due_at:%H:%M:%S})",
            )
    for seen in records:
        if id(seen) not in matched and seen.status == "Succeeded":
            report(
                "r",
                seen.completed_at,
                f"an outcome record says the restore of {seen.backup_name} into "
                f"{seen.target} succeeded; APIM ran no such restore",
            )
    if standby is not None:
        _judge_drills(ended, injected, drill_rows, standby, figures, report)
    return figures


def _judge_drills(
    ended: list[ApimOperation],
    injected: Injected,
    drill_rows: Iterable[dict[str, Any]],
    standby: tuple[str, str],
    figures: RestoreFigures,
    report: Report,
) -> None:
    """The drills are the restores APIM began during a standby-sync step."""
    source, target = standby
    drills = [
        op
        for op in ended
        if op.service == target
        and any(began <= op.started_at <= end for began, end in injected.standby_syncs)
    ]
    figures.drills = len(drills)
    good = [op.started_at for op in drills if op.succeeded]
    figures.drills_succeeded = len(good)
    if injected.standby_syncs:
        marks = [injected.standby_syncs[0][0], *good, injected.standby_syncs[-1][1]]
        figures.longest_without_drill = max(b - a for a, b in pairwise(marks))
    if not drills:
        return
    last = drills[-1]
    key = f"{source}=>{target}"
    row = next((r for r in drill_rows if r.get("RowKey") == key), None)
    if row is None:
        report("r", last.due_at, f"no drill row {key} after {len(drills)} drills")
    elif row.get("BackupName") != last.backup_name or row.get("Status") != last.status:
        report(
            "r",
            last.due_at,
            f"the drill row {key} says {row.get('BackupName')} {row.get('Status')}; the last "
            f"drill APIM ran was {last.backup_name}, {last.status}",
        )
