"""Event Grid events, as Azure's system topics would publish them for the emulator's writes.

A change made through the emulator's Resource Manager routes publishes what Azure's two
system topics publish (Event Grid schema):

- the resource group's topic: ``Microsoft.Resources.ResourceWriteSuccess`` for a PUT or
  PATCH, ``ResourceDeleteSuccess`` for a DELETE, ``ResourceActionSuccess`` for a POST
  (a backup or a restore is an action: ``Microsoft.ApiManagement/service/backup/action``),
  with ``resourceUri`` and ``operationName``, and ``resourcegroups`` in lower case as
  Resource Manager writes it;
- the service's own topic, for the resources APIM has events for (APIs, products, users,
  subscriptions, gateways): ``Microsoft.ApiManagement.APIUpdated`` and so on.

Events go to one subscriber URL (``/_emulator/events/subscriber``) as Event Grid delivers
to a webhook: a POST of a JSON array with ``aeg-event-type: Notification``, from a
background thread (never while a request holds the emulator's lock), retried a few times.
Every event is also kept (the last ``MAX_KEPT``) with its delivery state, for tests.
"""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from emulator.model import JSON, PROVIDER, EmulatorError, Service

# Child collections with events of APIM's own topic, and the name in the event type.
APIM_EVENT_NAMES = {
    "apis": "API",
    "products": "Product",
    "users": "User",
    "subscriptions": "Subscription",
    "gateways": "Gateway",
}
APIM_VERBS = {"PUT": "Updated", "PATCH": "Updated", "DELETE": "Deleted"}
ARM_EVENTS = {
    "PUT": ("Microsoft.Resources.ResourceWriteSuccess", "write"),
    "PATCH": ("Microsoft.Resources.ResourceWriteSuccess", "write"),
    "DELETE": ("Microsoft.Resources.ResourceDeleteSuccess", "delete"),
    "POST": ("Microsoft.Resources.ResourceActionSuccess", "action"),
}
TENANT_ID = "72f988bf-0000-0000-0000-000000000000"
MAX_KEPT = 500
ATTEMPTS = 3
RETRY_SECONDS = (0.2, 1.0)


def _event(topic: str, subject: str, event_type: str, when: datetime, data: JSON) -> JSON:
    return {
        "id": str(uuid.uuid4()),
        "topic": topic,
        "subject": subject,
        "eventType": event_type,
        "eventTime": when.isoformat().replace("+00:00", "Z"),
        "data": data,
        "dataVersion": "1",
        "metadataVersion": "1",
    }


def arm_event(service: Service, path: str, method: str, when: datetime, action: str = "") -> JSON:
    """Resource Manager's event for ``method`` on the service (``path`` "") or below it."""
    event_type, verb = ARM_EVENTS[method]
    # Resource Manager spells the resource group segment in lower case in these events.
    uri = service.resource_id.replace("/resourceGroups/", "/resourcegroups/", 1) + path
    kinds = [part for i, part in enumerate(path.strip("/").split("/")) if i % 2 == 0 and part]
    resource_type = "/".join([f"{PROVIDER}/service", *kinds])
    operation = f"{resource_type}/{action}/action" if action else f"{resource_type}/{verb}"
    data = {
        "authorization": {"scope": uri, "action": operation, "evidence": {"role": "Emulator"}},
        "claims": {},
        "correlationId": str(uuid.uuid4()),
        "httpRequest": {"clientRequestId": str(uuid.uuid4()), "method": method},
        "resourceProvider": PROVIDER,
        "resourceUri": uri,
        "operationName": operation,
        "status": "Succeeded",
        "subscriptionId": service.subscription_id,
        "tenantId": TENANT_ID,
    }
    topic = f"/subscriptions/{service.subscription_id}/resourceGroups/{service.resource_group}"
    return _event(topic, uri, event_type, when, data) | {"dataVersion": "2"}


def apim_event(
    service: Service, collection: str, name: str, method: str, created: bool, when: datetime
) -> JSON | None:
    """APIM's own event for a change of a child resource, when APIM has one for it."""
    kind = APIM_EVENT_NAMES.get(collection)
    if kind is None:
        return None
    verb = "Created" if created else APIM_VERBS[method]
    subject = f"/{collection}/{name}" + (";Rev=1" if collection == "apis" else "")
    data = {"resourceUri": service.resource_id + subject}
    return _event(service.resource_id, subject, f"Microsoft.ApiManagement.{kind}{verb}", when, data)


@dataclass
class Published:
    event: JSON
    state: str = "pending"  # then "delivered", "failed", or "unsubscribed"
    attempts: int = 0
    error: str | None = None

    def describe(self) -> JSON:
        return {
            "event": self.event,
            "state": self.state,
            "attempts": self.attempts,
            "error": self.error,
        }


@dataclass
class Publisher:
    """The subscriber URL, the events kept, and the thread that delivers them."""

    url: str | None = None
    cafile: str | None = None
    kept: list[Published] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue[Published] = queue.Queue()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        threading.Thread(target=self._deliver_forever, name="event-delivery", daemon=True).start()

    def subscribe(self, body: JSON) -> JSON:
        url = body.get("url")
        if url is not None and (not isinstance(url, str) or not _is_http(url)):
            raise EmulatorError(400, "InvalidParameters", "'url' must be an http(s) URL or null.")
        cafile = body.get("cafile")
        with self._lock:
            self.url = url
            self.cafile = cafile if isinstance(cafile, str) and cafile else None
        return self.subscription()

    def subscription(self) -> JSON:
        with self._lock:
            return {"url": _redacted(self.url), "kept": len(self.kept)}

    def publish(self, events: list[JSON]) -> None:
        with self._lock:
            for event in events:
                item = Published(event, state="pending" if self.url else "unsubscribed")
                self.kept.append(item)
                if self.url:
                    self._busy += 1
                    self._queue.put(item)
            del self.kept[:-MAX_KEPT]

    def events(self) -> list[JSON]:
        with self._lock:
            return [item.describe() for item in self.kept]

    def clear(self) -> None:
        with self._lock:
            self.kept.clear()

    def reset(self) -> None:
        with self._lock:
            self.url = self.cafile = None
            self.kept.clear()

    def drain(self, timeout: float) -> bool:
        """Wait until every queued event is delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _deliver_forever(self) -> None:
        while True:
            item = self._queue.get()
            try:
                self._deliver(item)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _deliver(self, item: Published) -> None:
        for attempt in range(ATTEMPTS):
            with self._lock:
                url, cafile = self.url, self.cafile
                item.attempts = attempt + 1
                if url is None:
                    item.state = "unsubscribed"
                    return
            try:
                _post(url, [item.event], cafile)
            except (OSError, ValueError) as err:  # URLError and HTTPError are OSErrors
                with self._lock:
                    item.error = _describe(err)
                if attempt < len(RETRY_SECONDS):
                    time.sleep(RETRY_SECONDS[attempt])
                continue
            with self._lock:
                item.state, item.error = "delivered", None
            return
        with self._lock:
            item.state = "failed"


def _post(url: str, events: list[JSON], cafile: str | None) -> None:
    request = urllib.request.Request(  # noqa: S310 - the URL the test or developer configured
        url,
        data=json.dumps(events).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "aeg-event-type": "Notification"},
    )
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    with urllib.request.urlopen(request, timeout=30, context=context) as response:  # noqa: S310
        response.read()


def _describe(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code}"
    return f"{type(err).__name__}: {err}"[:300]


def _is_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _redacted(url: str | None) -> str | None:
    """The URL without its query: it may carry the Functions host's system key."""
    if url is None:
        return None
    parts = urlsplit(url)
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
