"""``python -m bench.year``: the simulated year from the command line (``make year``)."""

from __future__ import annotations

import argparse
import logging
import os
from datetime import date

import bench.year
from bench.year.driver import simulate
from bench.year.world import DEFAULTS, SERVICES, YearSettings
from devstack.stack import LocalStack


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.year",
        description=bench.year.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--nights", type=int, default=400)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--retention-days", type=int, default=DEFAULTS.retention_days)
    parser.add_argument("--min-keep", type=int, default=DEFAULTS.min_keep)
    parser.add_argument("--ledger-history-days", type=int, default=DEFAULTS.ledger_history_days)
    parser.add_argument(
        "--trace-night",
        action="append",
        default=[],
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="print what the tick, housekeeping and the debts did that day (repeatable)",
    )
    args = parser.parse_args(argv)
    settings = YearSettings(
        retention_days=args.retention_days,
        min_keep=args.min_keep,
        ledger_history_days=args.ledger_history_days,
    )
    logging.getLogger().addHandler(logging.NullHandler())  # the product's own logs: quiet
    with LocalStack.start() as stack:
        os.environ["REQUESTS_CA_BUNDLE"] = stack.ca_bundle
        print(
            f"Simulating {args.nights} nights of {len(SERVICES)} services (seed {args.seed}, "
            f"RETENTION_DAYS={settings.retention_days}, MIN_KEEP={settings.min_keep}, "
            f"LEDGER_HISTORY_DAYS={settings.ledger_history_days})"
        )
        trace = frozenset(args.trace_night)
        totals = simulate(stack, args.nights, args.seed, settings, trace=trace)
    print("\n".join(totals.lines()))
    if totals.problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
