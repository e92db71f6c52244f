"""``python -m bench.year``: the simulated year from the command line (``make year``)."""

from __future__ import annotations

import argparse
import logging
import os
from datetime import date

import bench.year
from bench.year.driver import simulate
from bench.year.world import SERVICES
from devstack.stack import LocalStack


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.year", description=bench.year.__doc__)
    parser.add_argument("--nights", type=int, default=400)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--trace-night",
        action="append",
        default=[],
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="print what the tick, housekeeping and the debts did that day (repeatable)",
    )
    args = parser.parse_args(argv)
    logging.getLogger().addHandler(logging.NullHandler())  # the product's own logs: quiet
    with LocalStack.start() as stack:
        os.environ["REQUESTS_CA_BUNDLE"] = stack.ca_bundle
        print(f"Simulating {args.nights} nights of {len(SERVICES)} services (seed {args.seed})")
        totals = simulate(stack, args.nights, args.seed, frozenset(args.trace_night))
    print("\n".join(totals.lines()))
    if totals.problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
