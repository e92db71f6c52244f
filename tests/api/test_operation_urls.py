"""A tampered operation URL never sends a request (or the ARM token) anywhere but
ARM_ENDPOINT (issue 13 item 3).

A second real HTTPS server on loopback, trusted like the emulator (its own trustme CA,
added to the CA bundle the product uses), records every TCP connection it accepts.
Each URL trick is written into a running operation's row, the operation is polled
through the status route, and the recorder must stay empty: the row ends Failed with
the reason, its lock is freed, and an OperationUrlRejected signal is logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from shared.jobs.backups import start_backup
from shared.rules.model import Status, Trigger
from shared.signals import LOGGER_NAME
from tests.product import Product, body_of, get_operation

pytestmark = pytest.mark.stack


class Recorder:
    """An HTTPS server on 127.0.0.1 (and ::1 when the host has it), one port for both,
    that notes every connection and answers every request 200."""

    def __init__(self, workdir: Path) -> None:
        import trustme

        self.ca = trustme.CA()
        self.ca_file = workdir / "recorder-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "::1", "localhost").configure_cert(self.tls)
        self.connections: list[str] = []
        self.requests: list[str] = []
        self._sockets: list[socket.socket] = []
        first = socket.create_server(("127.0.0.1", 0))
        self.port = first.getsockname()[1]
        self._sockets.append(first)
        with contextlib.suppress(OSError):
            self._sockets.append(socket.create_server(("::1", self.port), family=socket.AF_INET6))
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, args=(s,)) for s in self._sockets]
        for thread in self._threads:
            thread.start()

    def _serve(self, listener: socket.socket) -> None:
        listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(str(peer))
            with contextlib.suppress(OSError, ssl.SSLError), conn:
                conn.settimeout(5)
                with self.tls.wrap_socket(conn, server_side=True) as tls:
                    head = tls.recv(65536).decode("latin-1")
                    self.requests.append(head)
                    tls.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                    )

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for listener in self._sockets:
            listener.close()


@pytest.fixture
def recorder(product: Product, tmp_path: Path, monkeypatch) -> Iterator[Recorder]:
    server = Recorder(tmp_path)
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(
        Path(product.stack.ca_bundle).read_text() + server.ca_file.read_text(), encoding="ascii"
    )
    # The product would complete a TLS handshake with the recorder: nothing but the URL
    # rules stands between a tampered row and a request there.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    try:
        yield server
    finally:
        server.stop()


def test_the_recorder_sees_a_request_and_the_backslash_trick_is_real(
    product: Product, recorder: Recorder
):
    """Without the product's rules the trick works: urlsplit names ARM's host, but the
    request (with its Authorization header) goes to the recorder."""
    from urllib.parse import urlsplit

    a, e = product.stack.port, recorder.port
    trick = f"https://127.0.0.1:{e}\\@127.0.0.1:{a}/subscriptions/x"
    assert (urlsplit(trick).hostname, urlsplit(trick).port) == ("127.0.0.1", a)
    with contextlib.suppress(requests.RequestException):
        requests.get(trick, headers={"Authorization": "Bearer t"}, timeout=5)
    assert recorder.connections, "the recorder must be reachable for this test to mean anything"
    assert "Authorization: Bearer t" in recorder.requests[0]


def tricks(a: int, e: int, sub: str) -> list[tuple[str, str]]:
    h = "127.0.0.1"
    p = (
        f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ApiManagement/service"
        "/contoso-apim/operationresults/0123456789abcdef?api-version=2024-05-01"
    )
    return [
        ("another port", f"https://{h}:{e}{p}"),
        ("another host name", f"https://localhost:{e}{p}"),
        ("no port (443)", f"https://{h}{p}"),
        ("backslash before @", f"https://{h}:{e}\\@{h}:{a}{p}"),
        ("encoded backslash", f"https://{h}:{e}%5C@{h}:{a}{p}"),
        ("encoded backslash lower", f"https://{h}:{e}%5c@{h}:{a}{p}"),
        ("user info naming ARM", f"https://{h}:{a}@{h}:{e}{p}"),
        ("user and password", f"https://user:secret@{h}:{a}{p}"),
        ("encoded @ in the authority", f"https://{h}:{a}%40{h}:{e}{p}"),
        ("fragment then @", f"https://{h}:{e}#@{h}:{a}{p}"),
        ("fragment at the end", f"https://{h}:{a}{p}#@{h}:{e}/"),
        ("query then @", f"https://{h}:{e}?@{h}:{a}{p}"),
        ("tab before @", f"https://{h}:{e}\t@{h}:{a}{p}"),
        ("tab in the path", f"https://{h}:{a}/subscriptions/\t{p}"),
        ("CRLF header injection", f"https://{h}:{a}{p}\r\nHost: {h}:{e}"),
        ("NUL before @", f"https://{h}:{e}\x00@{h}:{a}{p}"),
        ("leading space", f" https://{h}:{a}{p}"),
        ("IPv6 loopback", f"https://[::1]:{e}{p}"),
        ("IPv4-mapped IPv6", f"https://[::ffff:127.0.0.1]:{e}{p}"),
        ("IPv4-mapped IPv6 hex", f"https://[::ffff:7f00:1]:{e}{p}"),
        ("IPv6 with user info", f"https://{h}:{a}@[::1]:{e}{p}"),
        ("decimal IPv4", f"https://2130706433:{e}{p}"),
        ("two ports", f"https://{h}:{a}:{e}{p}"),
        ("http", f"http://{h}:{a}{p}"),
        ("http to the recorder", f"http://{h}:{e}{p}"),
        ("scheme-relative", f"//{h}:{e}{p}"),
        ("one slash", f"https:/{h}:{e}{p}"),
        ("no slash", f"https:{h}:{e}{p}"),
        ("path starting //evil", f"https://{h}:{a}//{h}:{e}{p}"),
        ("dot segments to //evil", f"https://{h}:{a}/subscriptions/../..//{h}:{e}/x"),
        ("encoded slashes", f"https://{h}:{a}/subscriptions/%2F%2F{h}:{e}/x"),
        ("encoded dot-dot-slash", f"https://{h}:{a}/subscriptions/..%2F..%2F{h}:{e}"),
        ("encoded dots", f"https://{h}:{a}/subscriptions/%2e%2e/%2E%2E/x"),
        ("@ in the path", f"https://{h}:{a}/subscriptions/x@{h}:{e}/y"),
        ("encoded @ in the path", f"https://{h}:{a}/subscriptions/x%40{h}:{e}/y"),
        ("backslashes as the path", f"https://{h}:{a}\\\\{h}:{e}{p}"),
        ("backslash path separators", f"https://{h}:{a}" + p.replace("/", "\\")),
        ("full-width dot host", f"https://127\uff0e0\uff0e0\uff0e1:{e}{p}"),
        ("path not under /subscriptions", f"https://{h}:{a}/providers{p}"),
        ("no path", f"https://{h}:{a}"),
        ("malformed escape", f"https://{h}:{a}/subscriptions/%zz/x"),
    ]


def _trick_ids() -> list[str]:
    return [name for name, _ in tricks(1, 2, "s")]


@pytest.mark.parametrize("name", _trick_ids())
def test_no_tampered_url_reaches_another_host(
    product: Product, recorder: Recorder, caplog, name: str
):
    url = dict(tricks(product.stack.port, recorder.port, product.stack.subscription_id))[name]
    product.stack.control.set_duration(600)
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    operation = product.runtime.operations.get(started.operation.operation_id)
    assert operation is not None and operation.operation_url
    product.runtime.operations.save(operation.with_changes(operation_url=url))
    product.stack.control.clear_requests()

    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        response = get_operation(operation.operation_id)

    assert recorder.connections == []
    assert product.stack.control.requests() == []  # nothing sent at all
    assert response.status_code == 200
    body = body_of(response)
    assert body["status"] == "Failed"
    assert "operation URL was rejected" in body["error"]["message"]
    assert url not in body["error"]["message"]  # never echoed
    assert product.runtime.operations.lock_holder("contoso-apim") is None
    row = product.runtime.ledger.get("contoso-apim", started.backup.backup_name)
    assert row is not None and row.status is Status.FAILED
    [signal] = [r for r in caplog.records if "OperationUrlRejected" in r.getMessage()]
    fields = json.loads(signal.getMessage().split(" ", 2)[2])
    assert fields["service"] == "contoso-apim"
    assert fields["operationId"] == operation.operation_id
    assert "rejected" in fields["reason"]


def test_a_mixed_case_scheme_and_default_spelling_still_poll_arm(
    product: Product, recorder: Recorder
):
    """Equivalent spellings of ARM_ENDPOINT are accepted, and the poll still goes to
    ARM_ENDPOINT with the recorded path and query."""
    product.stack.control.set_duration(600)
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    operation = product.runtime.operations.get(started.operation.operation_id)
    assert operation is not None
    url = operation.operation_url.replace("https://", "HTTPS://")
    product.runtime.operations.save(operation.with_changes(operation_url=url))
    product.stack.control.clear_requests()
    product.clock.now += timedelta(seconds=1)

    assert get_operation(operation.operation_id).status_code == 202

    assert recorder.connections == []
    [poll] = product.stack.control.requests()
    assert poll["method"] == "GET" and "/operationresults/" in poll["path"]
