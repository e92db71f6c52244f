"""Configuration changes in the simulated year (issue 19): on some days one service's
configuration is changed through Resource Manager (the emulator's routes, with the real
management client), and every event the emulator publishes (the changes, and the
product's own backup and restore actions) is handed to the product as the Event Grid
trigger ``config_changed`` hands it: an ``azure.functions.EventGridEvent``.

Patterns, one a change day, in turn: a burst (20 changes in 5 minutes), a stream (a change
a minute for 90 minutes), a few changes delivered twice (Event Grid delivers at least
once), and a single change. Housekeeping ticks every 5 minutes from the first change until
well after the last, as the product's timer does (the rest of the day keeps the year's
sparse ticks)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import azure.functions as func
from azure.mgmt.apimanagement.models import NamedValueCreateContract

from bench.year.record import ChangeMade
from shared.jobs import changes

if TYPE_CHECKING:
    from bench.year.driver import Year

PATTERNS = ("burst", "stream", "duplicates", "single")
EVERY = 7  # nights: a change day every EVERY nights, from night 3
WINDOW_START = timedelta(hours=6)  # after midnight: between the night's ticks
TICK = timedelta(minutes=5)
TAIL = timedelta(minutes=90)  # ticks after the last change: past quiet + max delay + a backup


@dataclass(frozen=True)
class ChangeDay:
    pattern: str
    service: str
    offsets: tuple[timedelta, ...]  # after WINDOW_START, in order


def plan_day(
    index: int, victim: str, services: tuple[str, ...], rng: random.Random
) -> ChangeDay | None:
    """The changes of night ``index`` (None: not a change day). The changed service is
    never the night's fault victim: the faults are judged by other checks."""
    if index % EVERY != 3:
        return None
    pattern = PATTERNS[(index // EVERY) % len(PATTERNS)]
    service = rng.choice([s for s in services if s != victim])
    if pattern == "burst":
        offsets = [timedelta(seconds=15 * i) for i in range(20)]
    elif pattern == "stream":
        offsets = [timedelta(minutes=i) for i in range(90)]
    elif pattern == "duplicates":
        offsets = sorted(timedelta(minutes=rng.randint(0, 30)) for _ in range(5))
    else:
        offsets = [timedelta(minutes=rng.randint(0, 20))]
    return ChangeDay(pattern, service, tuple(offsets))


@dataclass
class EventCounts:
    delivered: int = 0
    duplicates: int = 0
    verdicts: dict[str, int] | None = None

    def add(self, verdict: str) -> None:
        self.verdicts = self.verdicts or {}
        self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1


def grid_event(body: dict[str, Any]) -> func.EventGridEvent:
    """The event as the Functions worker parses an Event Grid delivery for the trigger."""
    moment = body.get("eventTime")
    return func.EventGridEvent(
        id=body["id"],
        data=body["data"],
        topic=body["topic"],
        subject=body["subject"],
        event_type=body["eventType"],
        event_time=datetime.fromisoformat(moment) if isinstance(moment, str) else None,
        data_version=body["dataVersion"],
    )


class Changes:
    """Makes a day's changes and delivers the published events to the product."""

    def __init__(self, year: Year) -> None:
        self.year = year
        self.counts = EventCounts()
        self.twice = False  # deliver every event two times (the duplicates pattern)

    def deliver(self) -> None:
        """Every event the emulator published since the last call, to the trigger's core."""
        control = self.year.control
        published = [item["event"] for item in control.events()]
        control.clear_events()
        for body in published:
            for _ in range(2 if self.twice else 1):
                result = changes.receive_event(self.year.runtime, grid_event(body))
                self.counts.delivered += 1
                self.counts.add(result.verdict.value)
            self.counts.duplicates += self.twice

    def change(self, service: str, n: int) -> ChangeMade:
        """One named value written on ``service``: a configuration change Resource Manager
        reports (APIM's own topic has no event for named values)."""
        year = self.year
        client = year.runtime.clients.apim(year.stack.subscription_id)
        name = f"setting-{n % 7}"
        contract = NamedValueCreateContract(display_name=name, value=f"v{n}")
        client.named_value.begin_create_or_update(
            year.stack.resource_group, service, name, contract
        ).result()
        return ChangeMade(service, year.clock.now, f"namedValues/{name}")

    def run_day(self, day: ChangeDay, midnight: datetime, tick: Callable[[], None]) -> None:
        year = self.year
        start = midnight + WINDOW_START
        self.twice = day.pattern == "duplicates"
        made = iter(day.offsets)
        pending = next(made, None)
        for moment in _every(start, start + day.offsets[-1] + TAIL, TICK):
            while pending is not None and start + pending < moment:
                year.at(start + pending)
                began = year.begin("configuration change")
                year.injected.changes.append(self.change(day.service, len(year.injected.changes)))
                year.observe("configuration change", began)  # delivers the events first
                pending = next(made, None)
            year.at(moment)
            tick()
        self.twice = False


def _every(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    moment = start + step
    while moment <= end:
        yield moment
        moment += step
