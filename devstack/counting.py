"""Count the HTTP requests the Azure SDKs actually send, at the transport.

    with count_requests() as sent:
        housekeeping.run(runtime)
    sent.total, sent.by_port[azurite.table_port]

Every SDK client in the process (storage, tables, Resource Manager) sends through
azure-core's ``RequestsTransport``; counting there counts retries too, and needs no
change to the product. For benchmarks and request-count tests; never for production.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Sent:
    """Requests sent while counting: in total, per target port, and per method."""

    by_port: Counter[int] = field(default_factory=Counter)
    by_method: Counter[str] = field(default_factory=Counter)
    # Each request's path and query, in the order sent (no host: nothing secret is kept,
    # the storage SDKs send keys in headers, never in URLs).
    paths: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total(self) -> int:
        return sum(self.by_port.values())

    def to(self, *ports: int) -> int:
        return sum(self.by_port[p] for p in ports)

    def add(self, url: str, method: str) -> None:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with self._lock:
            self.by_port[port] += 1
            self.by_method[method.upper()] += 1
            self.paths.append(f"{parts.path}?{parts.query}")


@contextmanager
def count_requests() -> Iterator[Sent]:
    """Count every request sent through azure-core's requests transport meanwhile."""
    from azure.core.pipeline.transport._requests_basic import RequestsTransport

    sent = Sent()
    original = RequestsTransport.send

    def counting_send(self: Any, request: Any, **kwargs: Any) -> Any:
        sent.add(str(request.url), str(request.method))
        return original(self, request, **kwargs)

    RequestsTransport.send = counting_send  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        RequestsTransport.send = original  # type: ignore[method-assign]
