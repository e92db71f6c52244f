"""The mutation score per module, from mutmut's results (`make mutate` prints it).

mutmut 3 keeps one `mutants/<path>.meta` JSON file per mutated module; its
`exit_code_by_key` maps each mutant to the exit code of the test run against it. A
mutant is killed when the tests failed (1, or 3 for a pytest internal error) or ran out
of time (mutmut's timeout codes); it survived on 0; "no tests" (5, 33) means no test in
tests/rules reaches the mutated function, which counts against the score like a survivor.

Exit status 1 when a module is under the target (90% by default), so it can gate a run.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

KILLED = frozenset({1, 3, 36, 37, -24, 24, 152, 255})
SURVIVED = frozenset({0})
NO_TESTS = frozenset({5, 33})


@dataclass(frozen=True)
class Score:
    module: str
    killed: int
    survived: int
    no_tests: int
    other: int  # not checked yet, interrupted, suspicious, segfault

    @property
    def total(self) -> int:
        return self.killed + self.survived + self.no_tests + self.other

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.total if self.total else 100.0


def score_file(meta: Path, root: Path) -> Score:
    codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    if not isinstance(codes, dict):
        raise ValueError(f"{meta}: exit_code_by_key is not an object")
    killed = sum(1 for c in codes.values() if c in KILLED)
    survived = sum(1 for c in codes.values() if c in SURVIVED)
    no_tests = sum(1 for c in codes.values() if c in NO_TESTS)
    module = meta.relative_to(root).as_posix().removesuffix(".meta")
    return Score(module, killed, survived, no_tests, len(codes) - killed - survived - no_tests)


def scores(root: Path) -> list[Score]:
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        raise FileNotFoundError(f"no mutmut results under {root}: run `make mutate` first")
    return [score_file(m, root) for m in metas]


def render(rows: list[Score]) -> str:
    lines = [f"{'module':<28} {'killed / total':>15} {'%':>6}  survived  no tests  other"]
    for r in rows:
        lines.append(
            f"{r.module:<28} {f'{r.killed} / {r.total}':>15} {r.percent:>6.1f}"
            f"  {r.survived:>8}  {r.no_tests:>8}  {r.other:>5}"
        )
    killed = sum(r.killed for r in rows)
    total = sum(r.total for r in rows)
    percent = 100.0 * killed / total if total else 100.0
    lines.append(f"{'all':<28} {f'{killed} / {total}':>15} {percent:>6.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--target", type=float, default=90.0)
    args = parser.parse_args(argv)
    try:
        rows = scores(args.mutants)
    except (FileNotFoundError, ValueError, KeyError, json.JSONDecodeError) as error:
        print(f"mutation score: {error}", file=sys.stderr)
        return 2
    print(render(rows))
    below = [r.module for r in rows if r.percent < args.target]
    if below:
        print(f"under {args.target:.0f}%: {', '.join(below)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
