"""A short simulated year judged by the oracle (bench/year/oracle.py): every fault kind of
the matrix (issue 17's year-shaped defects included), pruning (a 2-day retention under
MIN_KEEP=4), restores while pruning runs, standby sync every night, two 30-hour outages,
and ledger history deletion (31 days), with every check run after every step and at every
night's end. The full 400 nights are
``make year``; docs/reliability.md, "The simulated year", says what each check means."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest

from bench.year.driver import simulate
from bench.year.faults import FAULTS
from bench.year.protection import ChangePolicy
from bench.year.world import BACKUP_SECONDS, SHORT
from devstack.stack import LocalStack

pytestmark = pytest.mark.stack

NIGHTS = 34  # every kind from night 1, a month of pruning, then history past 31 days
SHORT_CHANGES = ChangePolicy(  # docs/change-backups.md's promise, as the oracle checks it
    max_delay=timedelta(minutes=SHORT.change_max_delay_minutes),
    per_day=SHORT.change_backups_per_day,
    tick=timedelta(minutes=5),
    backup=timedelta(seconds=BACKUP_SECONDS),
)


def test_a_short_year_keeps_every_promise(emulator: LocalStack):
    totals = simulate(emulator, NIGHTS, seed=7, settings=SHORT)
    print("\n".join(totals.lines()))
    judged = totals.oracle

    assert totals.problems == []
    assert set(totals.faults) >= set(FAULTS)
    # It reached what it judges: pruning, history, restores, an outage past the RPO.
    assert judged.deleted_backups >= 2 * NIGHTS and judged.deleted_manifests >= NIGHTS
    assert judged.rows_deleted_by_history >= 3
    assert judged.restores >= NIGHTS - 4  # standby sync (once per new backup), and more
    assert judged.nights_breached_in_outage and not judged.nights_breached_outside
    assert judged.rpo_signals_due >= 5  # each tick of the outage had to say so
    assert judged.max_age_outside <= SHORT.rpo_hours
    assert judged.failure_causes["BackupFailed: APIM failed it"] >= 2
    assert judged.failure_causes["BackupFailed: the start never reached APIM"] >= 1
    # Each night's backup of each service happened (scheduled or caught up).
    assert judged.backups_succeeded >= NIGHTS * totals.services
    assert totals.catch_up_started >= 4 and totals.throttle_waits >= 2 and totals.crashes >= 3
    # Configuration changes (issue 19): every pattern, each change protected within the
    # bound, the daily cap reached and held, the product's own actions counted as its own.
    changes, bound = judged.changes, SHORT_CHANGES.bound.total_seconds()
    assert set(totals.change_days) == {"burst", "stream", "duplicates", "single"}
    assert changes.made >= 100 and changes.change_backups >= 4 and changes.capped >= 1
    assert changes.ages and max(changes.ages) <= bound
    verdicts = totals.events.verdicts or {}
    assert verdicts.get("change", 0) >= changes.made and verdicts.get("own", 0) >= NIGHTS
    # Restores and drills (issue 20): each one's outcome record agrees with APIM.
    restores = judged.restore_times
    assert len(restores.apim_seconds) == judged.restores == len(restores.product_seconds)
    assert restores.drills >= NIGHTS - 4 and restores.drills_succeeded == restores.drills
    assert restores.longest_without_drill.days < SHORT.drill_warning_days


def test_the_oracle_imports_nothing_of_the_product():
    """The judge reads the emulator, storage and the documentation's contract; never the
    product's code (which could share the product's mistakes)."""
    for module in ("oracle", "record", "protection", "rto"):
        path = Path(__file__).resolve().parents[2] / "bench" / "year" / f"{module}.py"
        tree = ast.parse(path.read_text())
        imported = {
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        assert not {m for m in imported if m and (m == "shared" or m.startswith("shared."))}
        assert not {m for m in imported if m and m.startswith(("azure.", "devstack"))}
