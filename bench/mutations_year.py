"""Does the CI year catch the product being wrong? Each mutation of issue 17 is applied to a
throwaway copy of this tree and the CI year (tests/**/test_year.py's short year)
is run there; a mutation the year does not fail on is missed.

    .venv/bin/python -m bench.mutations_year [--only NAME ...] [--baseline] [--keep]

Each mutation is found by its text anywhere under shared/ (the modules may move: the
text is what must exist exactly once), never in this tree itself. Prints, per mutation,
caught or missed, the oracle's checks that failed (bench/year/oracle.py's letters) and
the first problem. Exit status 1 when any mutation is missed, the unmutated year fails
(``--baseline``) or a year could not run. One to two minutes each.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "test_a_short_year_keeps_every_promise"  # in tests/**/test_year.py, wherever it is
IGNORE = shutil.ignore_patterns(
    ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".localstack"
)


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    old: str
    new: str


MUTATIONS = (
    Mutation(
        "over-pruning",
        "retention deletes every backup older than one day (MIN_KEEP and RETENTION_DAYS ignored)",
        "    old = _age_reason(record, now, timedelta(days=retention_days))\n",
        "    if now - record.created_at > timedelta(days=1):\n"
        '        return True, "older than one day (mutant)"\n'
        "    old = _age_reason(record, now, timedelta(days=retention_days))\n",
    ),
    Mutation(
        "blind-rpo",
        "check_rpo never reports a breach",
        "    breaches: list[RpoBreach] = []\n",
        "    breaches: list[RpoBreach] = []\n    return breaches  # mutant\n",
    ),
    Mutation(
        "no-backupfailed-on-settle",
        "a poll that settles a backup Failed emits no BackupFailed",
        "    if settled.status is Status.FAILED:\n        signal_failure(settled)\n",
        "    if settled.status is Status.FAILED and settled.kind is not OperationKind.BACKUP:\n"
        "        signal_failure(settled)\n",
    ),
    Mutation(
        "covered-without-backup",
        "the run's Covered mark is written though a service has no backup",
        "        all_covered = False\n",
        "        pass  # mutant: all_covered stays True\n",
    ),
    Mutation(
        "any-running-row-live",
        "any Running ledger row counts as a live backup (_any_live)",
        "        if row.status is Status.RUNNING and row.operation_id:\n",
        "        if row.status is Status.RUNNING:\n            return True  # mutant\n"
        "        if row.status is Status.RUNNING and row.operation_id:\n",
    ),
    Mutation(
        "under-pruning",
        "retention keeps every succeeded backup (RETENTION_DAYS never reached)",
        '    if old is None:\n        return False, f"within retention ({retention_days} days)"\n',
        "    if True:  # mutant\n"
        '        return False, f"within retention ({retention_days} days)"\n',
    ),
    # Issue 19: change backups.
    Mutation(
        "no-max-delay",
        "debouncing waits for quiet only: CHANGE_MAX_DELAY_MINUTES ignored",
        "    if now >= overdue_at:\n",
        "    if False:  # mutant\n",
    ),
    Mutation(
        "no-daily-cap",
        "CHANGE_BACKUPS_PER_DAY ignored",
        "    if backups_last_day >= policy.per_day:\n",
        "    if False:  # mutant\n",
    ),
    Mutation(
        "own-writes-are-changes",
        "the product's own backup and restore actions count as configuration changes",
        "        return Verdict.OWN, "
        'f"{_clip(operation)} is a backup or restore, not a change", ""\n',
        '        return Verdict.CHANGE, "", "own action"  # mutant\n',
    ),
    # Issue 20: restores and drills.
    Mutation(
        "no-drill-row",
        "a settled standby-sync restore is not recorded as its pair's drill",
        "    drills.record(runtime, operation)\n",
        "    pass  # mutant\n",
    ),
    Mutation(
        "outcome-ends-at-start",
        "every outcome record says its operation ended when it was started",
        "    outcomes.emit(operation, size, code)\n",
        "    outcomes.emit(\n"
        "        operation.with_changes(completed_at=operation.created_at), size, code\n"
        "    )\n",
    ),
)


def apply(tree: Path, mutation: Mutation) -> Path:
    """Apply ``mutation`` in ``tree``; the file it changed. Its text must occur once."""
    hits = [
        (path, path.read_text().count(mutation.old))
        for path in sorted((tree / "shared").rglob("*.py"))
        if mutation.old in path.read_text()
    ]
    if len(hits) != 1 or hits[0][1] != 1:
        where = ", ".join(f"{p.relative_to(tree)} x{n}" for p, n in hits) or "nowhere"
        raise SystemExit(f"{mutation.name}: its text must occur exactly once; found {where}")
    path = hits[0][0]
    path.write_text(path.read_text().replace(mutation.old, mutation.new))
    return path


@dataclass(frozen=True)
class Outcome:
    caught: bool  # the year ran and failed
    ran: bool  # pytest ran the year (exit 0 or 1), rather than failing to start
    checks: str
    first: str
    seconds: float


def year_test(tree: Path) -> str:
    [path] = sorted(tree.glob("tests/**/test_year.py"))
    return f"{path.relative_to(tree)}::{TEST}"


def run_year(tree: Path) -> Outcome:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    python = tree / ".venv" / "bin" / "python"
    where = subprocess.run(
        [python, "-c", "import shared; print(shared.__file__)"],
        cwd=tree, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    if not where.stdout.strip().startswith(str(tree)):
        raise SystemExit(f"the copy imports another tree's product: {where.stdout.strip()}")
    began = time.perf_counter()
    done = subprocess.run(
        [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", year_test(tree)],
        cwd=tree, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - began
    output = done.stdout + done.stderr
    summary = re.search(r"^problems: \d+ \((.*)\)$", output, re.MULTILINE)
    first = re.search(r"^  - (\[[a-z]\] .*)$", output, re.MULTILINE)
    failure = re.search(r"^E\s+(.*)$", output, re.MULTILINE)
    return Outcome(
        caught=done.returncode == 1,
        ran=done.returncode in (0, 1),  # 2-5: interrupted, internal error, usage, no tests
        checks=summary[1] if summary else "",
        first=first[1] if first else (failure[1] if failure else output.strip()[-300:]),
        seconds=seconds,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mutations_year", description=__doc__)
    parser.add_argument("--only", action="append", choices=[m.name for m in MUTATIONS])
    parser.add_argument("--baseline", action="store_true", help="first run the unmutated copy")
    parser.add_argument("--keep", action="store_true", help="keep the copies (printed)")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    missed = 0
    for mutation in ([None] if args.baseline else []) + chosen:
        workdir = Path(tempfile.mkdtemp(prefix="year-mutant-"))
        tree = workdir / "tree"
        shutil.copytree(ROOT, tree, symlinks=True, ignore=IGNORE)
        name = mutation.name if mutation else "baseline (no mutation)"
        changed = apply(tree, mutation).relative_to(tree) if mutation else None
        outcome = run_year(tree)
        if not outcome.ran:
            verdict = "DID NOT RUN"
            missed += 1
        elif mutation is None:
            verdict = "FAILS (the year must pass unmutated)" if outcome.caught else "passes"
            missed += outcome.caught
        else:
            verdict = "caught" if outcome.caught else "MISSED"
            missed += not outcome.caught
        print(f"{name}: {verdict} in {outcome.seconds:.0f} s")
        if mutation:
            print(f"  mutation: {mutation.what} ({changed})")
        if outcome.checks:
            print(f"  checks that failed: {outcome.checks}")
        if outcome.caught or not outcome.ran:
            print(f"  first: {outcome.first}")
        sys.stdout.flush()
        if args.keep:
            print(f"  copy: {tree}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
