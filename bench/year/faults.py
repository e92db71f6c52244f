"""The fault matrix of the simulated year (docs/reliability.md, "The fault matrix"): which
kinds exist, which night gets which, and the means to inject them: the emulator's fault
controls for Resource Manager, and stand-ins for the storage clients (a process that dies
before its n-th table write, storage that cannot be reached)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from azure.core.exceptions import ServiceRequestError

from devstack.stack import EmulatorControl

FAULTS = (
    "throttled-start",  # 429 then 503 with Retry-After on the start: retried, one backup
    "throttled-past-budget",  # 429 three times: owed, caught up
    "throttled-poll",  # 429 and 503 with Retry-After on polls
    "start-500-taken",  # APIM starts it, answers 500: unconfirmed, settled by its blob
    "start-dropped-taken",  # APIM starts it, the connection drops
    "start-dropped-lost",  # the connection drops before APIM sees it
    "start-502-lost",  # a gateway 502, APIM never saw it
    "service-updating",  # a deployment holds the service Updating from 01:55 for 1 h
    "operation-fails",  # APIM runs the backup and it fails
    "storage-down-tick",  # storage unreachable for the scheduled tick
    "storage-down-housekeeping",  # storage unreachable for one housekeeping tick
    "crash-tick",  # the scheduled tick dies before its n-th table write
    "crash-housekeeping",  # the first housekeeping tick dies before its n-th write
    "poll-dropped",  # dropped connections on polls
    "manual-backup",  # an on-demand backup in the afternoon (pays any debt)
)
LONG_OUTAGE = timedelta(hours=30)  # longer than the RPO: a breach it explains


class Crash(BaseException):
    """The process dies here: nothing catches it, later writes never happen."""


@dataclass
class CrashPlan:
    writes_left: int
    crashed: bool = False
    where: str = ""  # the write it died before (traced)


class CrashingTable:
    """A TableClient whose ``writes_left``-th next write kills the process."""

    WRITES = frozenset(
        {"create_entity", "update_entity", "upsert_entity", "delete_entity", "submit_transaction"}
    )

    def __init__(self, inner: Any, plan: CrashPlan) -> None:
        self._inner = inner
        self._plan = plan

    def __getattr__(self, name: str) -> Any:
        if self._plan.crashed:
            raise Crash(f"the process is dead: it crashed {self._plan.where}")
        attr = getattr(self._inner, name)
        if name not in self.WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            if self._plan.writes_left <= 0:
                entity = args[0] if args else kwargs.get("entity")
                if isinstance(entity, dict):
                    where = f" of {entity.get('PartitionKey')}/{entity.get('RowKey')}"
                else:
                    where = f" of {'/'.join(map(str, args[:2]))}" if args else ""
                self._plan.where = f"before {name}{where}"
                self._plan.crashed = True
                raise Crash(f"crash {self._plan.where}")
            self._plan.writes_left -= 1
            return attr(*args, **kwargs)

        return write


class Unreachable:
    """Storage that cannot be reached: every use fails as the SDK fails."""

    def __getattr__(self, name: str) -> Any:
        raise ServiceRequestError("storage unreachable (simulated)")


def plan(count: int, rng: random.Random) -> list[list[str]]:
    """Which faults on which night: every kind early (so a short run has them all),
    then about two nights in three with one or two faults."""
    nights: list[list[str]] = [[] for _ in range(count)]
    kinds = list(FAULTS)
    for i, kind in enumerate(kinds):
        if 1 + i < count:
            nights[1 + i].append(kind)
    for night in range(1 + len(kinds), count):
        if rng.random() < 0.67:
            nights[night] = rng.sample(kinds, rng.choice((1, 1, 2)))
    return nights


def arm_start_fault(control: EmulatorControl, kind: str, service: str) -> None:
    """Arm the emulator for one fault of ``kind`` on ``service`` (the Resource Manager ones)."""
    path = f"/service/{service}/backup"
    inject = control.inject_fault
    if kind == "throttled-start":
        inject(method="POST", path_contains=path, status=429, retry_after=3)
        inject(method="POST", path_contains=path, status=503, retry_after=4)
    elif kind == "throttled-past-budget":
        inject(method="POST", path_contains=path, status=429, retry_after=40, times=3)
    elif kind == "start-500-taken":
        inject(method="POST", path_contains=path, status=500, accept=True)
    elif kind == "start-dropped-taken":
        inject(method="POST", path_contains=path, action="drop", accept=True)
    elif kind == "start-dropped-lost":
        inject(method="POST", path_contains=path, action="drop")
    elif kind == "start-502-lost":
        inject(method="POST", path_contains=path, status=502)
    elif kind == "throttled-poll":
        inject(method="GET", path_contains="/operationresults/", status=429, retry_after=60)
        inject(method="GET", path_contains="/operationresults/", status=503, retry_after=60)
    elif kind == "poll-dropped":
        inject(method="GET", path_contains="/operationresults/", action="drop", times=2)
    elif kind == "operation-fails":
        control.fail_next_operation(service, "BackupFailed", "Simulated failure")
