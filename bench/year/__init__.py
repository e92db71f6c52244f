"""A simulated year: nightly schedules, housekeeping ticks and faults, against the local stack.

    .venv/bin/python -m bench.year [--nights 400] [--seed 13]      (or: make year)
    .venv/bin/python -m bench.year --trace-night 2027-10-26   (what happened that day)

Drives the product (its own functions, a Runtime with a simulated clock) against
Azurite and the APIM emulator (whose clock moves with the product's) through
``--nights`` nightly schedules of three services. On most nights a fault from the
matrix is injected (docs/reliability.md): throttled starts within and past the retry
budget, 429/503 on polls, 500 and dropped connections on the start (taken by APIM or
not), the service Updating at 02:00, an operation that fails, storage unreachable for
the scheduled tick or a housekeeping tick, a crash before any write of a tick, and
(in runs of 60 nights or more) one outage longer than the RPO. Afterwards it checks
the invariants and prints the totals.

- ``world``: the services, the calendar and the settings;
- ``faults``: the fault matrix and the means to inject each kind;
- ``driver``: the simulated clock and the nights, through the product's functions;
- ``totals``: what the year counts and prints.
"""
