"""Which Event Grid events are configuration changes of a service this product backs up.

Two sources publish them, both in the Event Grid schema (id, topic, subject, eventType,
eventTime, data, dataVersion):

- APIM's own system topic (``Microsoft.ApiManagement.APIUpdated``, ``ProductCreated``...,
  ``data.resourceUri`` the changed resource, ``topic`` the service);
- Resource Manager, through a resource group's or subscription's system topic
  (``Microsoft.Resources.ResourceWriteSuccess`` / ``ResourceDeleteSuccess``, with
  ``data.resourceUri`` and ``data.operationName``): policies, named values, backends and
  certificates, which emit no APIM event, arrive only this way.

An event is a change when it concerns a configured service or one of its child resources
(by resource ID prefix, case-insensitive: Resource Manager writes ``resourcegroups`` in
lower case), succeeded, and wrote something. A backup or a restore is not a change (the
product's own ``.../backup`` and ``.../restore`` actions and their ``operationresults``),
nor is anything read-only. Every other event gets a verdict and a reason, so the trigger
can log it and drop it: Event Grid must never retry an event that can never be recorded.

Pure: no I/O. The trigger parses, ``classify`` decides, an adapter records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.rules.naming import ServiceId

APIM_PREFIX = "microsoft.apimanagement."
ARM_PREFIX = "microsoft.resources."
# Resource Manager's event types that are a finished write or delete: a change.
ARM_CHANGES = {
    "microsoft.resources.resourcewritesuccess": "write",
    "microsoft.resources.resourcedeletesuccess": "delete",
}
# Actions are not writes, except those that change what a backup holds (keys).
ARM_ACTION = "microsoft.resources.resourceactionsuccess"
CHANGING_ACTIONS = ("regenerate", "deploy")
# APIM event types end with what happened to the resource; other APIM events (gateway
# tokens expiring, circuit breakers) report state, not configuration.
APIM_VERBS = ("created", "updated", "deleted", "added", "removed")
# Child paths of a service that are the product's own operations, never a change.
OWN_SEGMENTS = frozenset({"backup", "restore", "operationresults"})
OWN_ACTIONS = ("/backup/action", "/restore/action")
# Extension resources on a service that the settings manifest keeps (diagnostic settings).
MANIFEST_PROVIDERS = frozenset({"microsoft.insights"})
MAX_ID = 128  # longer event ids are kept as their hash (they go into a table row)
MAX_WHAT = 160


class Verdict(StrEnum):
    CHANGE = "change"  # record it
    OWN = "own"  # a backup or restore: the product's own write
    NOT_A_CHANGE = "not-a-change"  # read-only, failed, or not configuration
    FOREIGN = "foreign"  # another resource or service, or another kind of event
    MALFORMED = "malformed"  # not an Event Grid event this product can read


class MalformedEvent(ValueError):
    """The body is not an Event Grid event (the message says which field is wrong)."""


@dataclass(frozen=True)
class GridEvent:
    """The Event Grid schema's fields, checked."""

    id: str
    topic: str
    subject: str
    event_type: str
    event_time: datetime
    data: Mapping[str, Any]
    data_version: str = ""


@dataclass(frozen=True)
class Change:
    """One configuration change of one service."""

    event_id: str
    service: str  # the service's key (ledger partition, lock key)
    at: datetime  # when it happened (never later than when it was received)
    what: str  # e.g. "apis/orders-api;rev=1 updated", "namedValues/backend-host write"


@dataclass(frozen=True)
class Classification:
    verdict: Verdict
    reason: str
    change: Change | None = None
    event_id: str = ""

    @property
    def is_change(self) -> bool:
        return self.verdict is Verdict.CHANGE


def event_key(raw_id: str) -> str:
    """The event id as a table value: as given when short and printable, else its hash."""
    if len(raw_id) <= MAX_ID and raw_id.isprintable() and raw_id.isascii():
        return raw_id
    return "sha256:" + hashlib.sha256(raw_id.encode("utf-8", "replace")).hexdigest()


def parse_event(body: Any) -> GridEvent:
    """An Event Grid schema event from its JSON object; MalformedEvent otherwise."""
    if not isinstance(body, Mapping):
        raise MalformedEvent("the event is not a JSON object")
    fields: dict[str, str] = {}
    for name in ("id", "eventType", "eventTime"):
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise MalformedEvent(f"'{name}' is missing or not a non-empty string")
        fields[name] = value.strip()
    for name in ("topic", "subject", "dataVersion"):
        value = body.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise MalformedEvent(f"'{name}' is not a string")
        fields[name] = value.strip()
    data = body.get("data")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise MalformedEvent("'data' is not a JSON object")
    return GridEvent(
        id=event_key(fields["id"]),
        topic=fields["topic"],
        subject=fields["subject"],
        event_type=fields["eventType"],
        event_time=parse_time(fields["eventTime"]),
        data=data,
        data_version=fields["dataVersion"],
    )


def parse_time(text: str) -> datetime:
    """eventTime: ISO 8601, UTC (Event Grid writes seven fractional digits and a Z)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedEvent("'eventTime' is not an ISO 8601 time") from None
    # The schema's eventTime is the provider's UTC time: a naive one is read as UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def classify(body: Any, services: Sequence[ServiceId], received_at: datetime) -> Classification:
    """What this event is to the product; a Change only for a configured service's
    configuration. Never raises for a bad body: that is a MALFORMED verdict."""
    try:
        event = parse_event(body)
    except MalformedEvent as err:
        raw_id = body.get("id") if isinstance(body, Mapping) else None
        event_id = event_key(raw_id) if isinstance(raw_id, str) and raw_id else ""
        return Classification(Verdict.MALFORMED, str(err), event_id=event_id)
    return classify_event(event, services, received_at)


def classify_event(
    event: GridEvent, services: Sequence[ServiceId], received_at: datetime
) -> Classification:
    kind = event.event_type.lower()
    if kind.startswith(APIM_PREFIX):
        verdict, reason, verb = _apim_kind(event)
    elif kind.startswith(ARM_PREFIX):
        verdict, reason, verb = _arm_kind(event)
    else:
        verdict, reason, verb = Verdict.FOREIGN, f"event type {event.event_type} is not ours", ""
    if verdict is not Verdict.CHANGE:
        return Classification(verdict, reason, event_id=event.id)
    uri = resource_uri(event)
    if not uri:
        return Classification(Verdict.MALFORMED, "no resource URI in the event", event_id=event.id)
    found = owning_service(uri, services)
    if found is None:
        return Classification(
            Verdict.FOREIGN, f"{_clip(uri)} is not a configured service", event_id=event.id
        )
    service, path = found
    own = _own_path(path)
    if own is not None:
        return Classification(Verdict.OWN, own, event_id=event.id)
    outside = _outside_backup(path)
    if outside is not None:
        return Classification(Verdict.NOT_A_CHANGE, outside, event_id=event.id)
    what = _clip(f"{path or 'service'} {verb}")
    change = Change(event.id, service.key, min(event.event_time, received_at), what)
    return Classification(Verdict.CHANGE, f"{service.name}: {what}", change, event.id)


def _apim_kind(event: GridEvent) -> tuple[Verdict, str, str]:
    tail = event.event_type[len(APIM_PREFIX) :]
    for verb in APIM_VERBS:
        if tail.lower().endswith(verb) and len(tail) > len(verb):
            return Verdict.CHANGE, "", verb
    return Verdict.NOT_A_CHANGE, f"{event.event_type} reports state, not configuration", ""


def _arm_kind(event: GridEvent) -> tuple[Verdict, str, str]:
    kind = event.event_type.lower()
    status = event.data.get("status")
    if isinstance(status, str) and status and status.lower() != "succeeded":
        return Verdict.NOT_A_CHANGE, f"the operation's status is {_clip(status)}", ""
    operation = event.data.get("operationName")
    operation = operation.strip() if isinstance(operation, str) else ""
    lowered = operation.lower()
    if lowered.endswith(OWN_ACTIONS):
        return Verdict.OWN, f"{_clip(operation)} is a backup or restore, not a change", ""
    if lowered.endswith("/read"):
        return Verdict.NOT_A_CHANGE, f"{_clip(operation)} is read-only", ""
    if kind in ARM_CHANGES:
        return Verdict.CHANGE, "", ARM_CHANGES[kind]
    if kind == ARM_ACTION:
        action = lowered.removesuffix("/action").rpartition("/")[2]
        if action.startswith(CHANGING_ACTIONS):
            return Verdict.CHANGE, "", action
        return (
            Verdict.NOT_A_CHANGE,
            f"{_clip(operation) or 'an action'} changes no configuration",
            "",
        )
    return Verdict.NOT_A_CHANGE, f"{event.event_type} is not a finished write or delete", ""


def resource_uri(event: GridEvent) -> str:
    """The changed resource's ID: ``data.resourceUri``; else the subject when it is a
    full ID (Resource Manager's topics), or topic + subject (APIM's topic)."""
    uri = event.data.get("resourceUri")
    if isinstance(uri, str) and uri.strip():
        return uri.strip().rstrip("/")
    subject = event.subject.rstrip("/")
    if subject.lower().startswith("/subscriptions/"):
        return subject
    if event.topic and subject.startswith("/"):
        return event.topic.rstrip("/") + subject
    return ""


def owning_service(uri: str, services: Sequence[ServiceId]) -> tuple[ServiceId, str] | None:
    """The configured service this resource ID is (or is below), and the path below it."""
    lowered = uri.lower()
    for service in services:
        prefix = service.resource_id.lower()
        if lowered == prefix:
            return service, ""
        if lowered.startswith(prefix + "/"):
            return service, uri[len(prefix) + 1 :]
    return None


def _own_path(path: str) -> str | None:
    """Why this path below a service is the product's own operation, or None."""
    first = path.split("/", 1)[0].lower()
    if first in OWN_SEGMENTS:
        return f"{first} is the product's own operation, not a change"
    return None


def _outside_backup(path: str) -> str | None:
    """Why an extension resource on the service (``providers/<namespace>/...``) holds
    nothing a backup or its manifest keeps, or None. Role assignments, locks and tags are
    Resource Manager's, not APIM's; diagnostic settings are in the settings manifest."""
    parts = path.split("/")
    if len(parts) < 2 or parts[0].lower() != "providers":
        return None
    if parts[1].lower() in MANIFEST_PROVIDERS:
        return None
    return f"{_clip(parts[1])} resources on the service are not in a backup"


def _clip(text: str) -> str:
    """A value from an event, safe to log and store: printable and short."""
    printable = "".join(c if c.isprintable() else "?" for c in text)
    return printable if len(printable) <= MAX_WHAT else printable[: MAX_WHAT - 3] + "..."
