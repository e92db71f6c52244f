"""A simulated year: nightly schedules, housekeeping ticks and faults against the local
stack, judged by an oracle that is not the product.

    .venv/bin/python -m bench.year [--nights 400] [--seed 13]      (or: make year)
    .venv/bin/python -m bench.year --trace-night 2027-10-26   (what happened that day)

Drives the product (its own functions, a Runtime with a simulated clock) against Azurite
and the APIM emulator (whose clock is stopped and moved with the product's) through
``--nights`` nightly schedules of three services, with standby sync at 04:00 and a fault
from the matrix on most nights (docs/reliability.md, "The fault matrix"). After every
step the oracle reads what APIM did (the emulator), which blobs exist (Azurite) and what
the product signalled, and judges it by the documented rules: the RPO, retention, the
ledger's completeness, the failure signals and needless backups; at the end, that
everything settled. Prints the oracle's totals; exits 1 on any problem.

- ``world``: the services, the calendar and the settings;
- ``faults``: the fault matrix and the means to inject each kind;
- ``driver``: the simulated clock and the nights, through the product's functions;
- ``record``: the year's own record of what happened, from the emulator and storage;
- ``oracle``: the checks, from that record alone (it imports nothing of the product);
- ``totals``: what the year counts and prints.
"""
