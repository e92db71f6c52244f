"""The scheduled tick (BACKUP_SCHEDULE): one backup per configured service, and no
service's night lost.

A service whose backup cannot be started now owes one (:mod:`shared.jobs.debts`), and
housekeeping starts it later (:mod:`shared.jobs.catchup`); one service's failure never
costs another its backup. A tick that finishes leaves a mark (PartitionKey
``schedule``, RowKey ``tick``): a run that never happened or died half-way leaves none,
and housekeeping records its debts from the schedule's time instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial

from shared.jobs import debts
from shared.jobs.backups import Started, start_backup
from shared.parallel import run_each
from shared.rules import errors
from shared.rules.model import Trigger
from shared.rules.naming import ServiceId
from shared.runtime import Runtime

log = logging.getLogger(__name__)


def scheduled_backups(runtime: Runtime, trigger: Trigger = Trigger.SCHEDULE) -> list[Started]:
    """One backup per configured service, MAX_PARALLEL at once; one that cannot start now
    is owed. The backups started."""
    # One account for every service: read once, on first need, inside a service's own start
    # (so a storage failure is that start's, and owed, not the whole tick's).
    cors = read_once(lambda: runtime.blobs.cors_rule_count())
    results = run_each(
        runtime.settings.apim_services,
        lambda service: _start_scheduled(runtime, service, cors, trigger),
        runtime.settings.max_parallel,
        "backup",
    )
    mark_tick(runtime)
    return [started for started in results if started is not None]


def _start_scheduled(
    runtime: Runtime, service: ServiceId, cors: Callable[[], int | None], trigger: Trigger
) -> Started | None:
    """One service's scheduled start; a failure is caught, logged and owed there."""
    start = partial(start_backup, runtime, service.resource_id, trigger, cors)
    return start_scheduled(runtime, service, start)


def read_once[T](read: Callable[[], T]) -> Callable[[], T]:
    """``read``, called at most once however many threads ask (a failed read is not
    kept: the next caller tries again and gets its own error)."""
    lock = threading.Lock()
    value: list[T] = []

    def once() -> T:
        with lock:
            if not value:
                value.append(read())
            return value[0]

    return once


def start_scheduled(
    runtime: Runtime, service: ServiceId, start: Callable[[], Started]
) -> Started | None:
    """The scheduled tick's start of one service: a failure becomes a debt, never lost.

    The debt is owed since the start began: a failure may come after APIM took the
    backup (recording its URL failed), and that backup, named at or after this moment,
    then pays the debt once it succeeds (settled from evidence). A debt since the
    failure would be younger than the backup's own name, and cost a second backup."""
    began = runtime.clock()
    try:
        started = start()
    except errors.ProductError as exc:
        log.warning(
            "Scheduled backup of %s not started: %s (%s); owed", service.name, exc.message, exc.code
        )
        _note(runtime, service, f"{exc.code}: {exc.message}", began)
        return None
    except Exception as exc:
        # One service's storage or network failure must not cost the others their backup.
        log.exception("Scheduled backup of %s failed; owed", service.name)
        _note(runtime, service, f"{type(exc).__name__} while starting the backup", began)
        return None
    try:
        debt = debts.get(runtime, service.key)
        if debt is not None:  # an older debt: this start may pay it
            debts.save(runtime, replace(debt, operation_id=started.operation.operation_id))
    except Exception:
        log.exception("Could not link the scheduled start of %s to its debt", service.name)
    return started


def _note(runtime: Runtime, service: ServiceId, error: str, since: datetime) -> None:
    try:
        debts.record_missed(runtime, service, error, since=since)
    except Exception:
        # Storage is down too: housekeeping finds the missed run by the schedule's time.
        log.exception("Could not record that %s owes its scheduled backup", service.name)


def mark_tick(runtime: Runtime) -> None:
    """The scheduled run finished: every service was started or owes its backup."""
    try:
        debts.store(runtime).mark_ran(runtime.clock())
    except Exception:
        log.exception("Could not mark the scheduled run as done")
