"""HTTPS front of the emulator: Resource Manager routes and the ``/_emulator/`` controls.

Stdlib only (ThreadingHTTPServer + ssl). The TLS handshake happens in the worker thread,
not in the accept loop, so a client that connects and says nothing (a port probe)
cannot stall the server.
"""

from __future__ import annotations

import json
import re
import ssl
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from emulator import API_VERSION
from emulator.model import JSON, EmulatorError
from emulator.state import Emulator, Fault, Operation

# A resource of a provider in a subscription's resource group.
_ARM = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
_SERVICE = _ARM + r"Microsoft\.ApiManagement/service/(?P<name>[^/]+)"
ROUTE_SERVICE = re.compile(_SERVICE + r"/?", re.IGNORECASE)
ROUTE_WORKSPACE_LINKS = re.compile(_SERVICE + r"/workspaceLinks/?", re.IGNORECASE)
ROUTE_DIAGNOSTIC_SETTINGS = re.compile(
    _SERVICE + r"/providers/Microsoft\.Insights/diagnosticSettings/?", re.IGNORECASE
)
ROUTE_LRO = re.compile(_SERVICE + r"/(?P<kind>backup|restore)/?", re.IGNORECASE)
# Where APIM's backup and restore answer their Location (as recorded from Azure):
# {service}/operationresults/{id}, which Resource Manager authorizes as the action
# Microsoft.ApiManagement/service/operationresults/read.
ROUTE_OPERATION = re.compile(_SERVICE + r"/operationresults/(?P<opid>[^/]+)/?", re.IGNORECASE)
_ACCOUNT = _ARM + r"Microsoft\.Storage/storageAccounts/(?P<name>[^/]+)"
ROUTE_ACCOUNT = re.compile(_ACCOUNT + r"/?", re.IGNORECASE)
ROUTE_BLOB_SERVICE = re.compile(_ACCOUNT + r"/blobServices/default/?", re.IGNORECASE)
ROUTE_CONTAINER = re.compile(
    _ACCOUNT + r"/blobServices/default/containers/(?P<container>[^/]+)/?", re.IGNORECASE
)
ROUTE_ROLE_ASSIGNMENTS = re.compile(
    r"(?P<scope>/subscriptions/.+?)/providers/Microsoft\.Authorization/roleAssignments/?",
    re.IGNORECASE,
)
ASSIGNED_TO = re.compile(r"\s*assignedTo\('(?P<principal>[^']*)'\)\s*", re.IGNORECASE)
# A child resource of a service (apis/{name}, namedValues/{name}...): emulator.children.
ROUTE_CHILD = re.compile(_SERVICE + r"/(?P<collection>[A-Za-z]+)/(?P<child>[^/]+)/?", re.IGNORECASE)
CONTROL_PREFIX = "/_emulator/"
ROUTE_CONTROL_SERVICE = re.compile(r"/_emulator/services/(?P<name>[^/]+)(?P<rest>/.*)?")

FAULT_CODES = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}
# Keys a client sends that must never be echoed back (the request log is readable).
SECRET_FIELDS = ("accessKey",)


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, emulator: Emulator, tls: ssl.SSLContext) -> None:
        self.emulator = emulator
        self.tls = tls
        super().__init__(("127.0.0.1", port), Handler)
        self.base_url = f"https://127.0.0.1:{self.server_address[1]}"

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(30)
        try:
            tls_socket = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a port probe or a client that does not trust us: nothing to answer
        try:
            super().finish_request(tls_socket, client_address)
        finally:
            tls_socket.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | ssl.SSLError | TimeoutError):
            return  # clients hang up; that is theirs to report
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Resource Manager does
    server: EmulatorServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"emulator: {self.address_string()} {format % args}\n")

    @property
    def emulator(self) -> Emulator:
        return self.server.emulator

    # -- plumbing --------------------------------------------------------------------

    def _handle(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path.startswith(CONTROL_PREFIX):
            self._send(self._run(lambda: self._control(path, raw)))
            return
        # Resource Manager's own latency, when a benchmark asks for it; slept outside the
        # emulator's lock, so concurrent requests overlap as they do in Azure.
        time.sleep(self.emulator.settings.latency)
        body = _parse_json(raw)
        entry: JSON = {"method": self.command, "path": path, "query": query, "body": _redact(body)}
        fault = self.emulator.take_fault(self.command, self.path)
        if fault is not None and fault.accept:
            # The request takes effect (an operation starts), and only its answer is lost.
            done = self._run(lambda: self._arm(path, query, raw))
            entry["acceptedStatus"] = done.status
        if fault is not None and fault.action == "drop":
            entry.update(status=None, fault="drop")
            self.emulator.record(entry)
            self.close_connection = True  # hang up without a word
            return
        if fault is not None:
            reply = _fault_reply(fault)
            entry["fault"] = "respond"
        else:
            reply = self._run(lambda: self._arm(path, query, raw))
        entry["status"] = reply.status
        self.emulator.record(entry)  # before answering, so the log is complete when read
        self._send(reply)

    def _run(self, route: Callable[[], Reply]) -> Reply:
        try:
            return route()
        except EmulatorError as err:
            return Reply(err.status, err.body())
        except Exception as err:
            # A bug or an unreachable Azurite: still answer in ARM's shape, and say why.
            traceback.print_exc(file=sys.stderr)
            return Reply(500, {"error": {"code": "InternalServerError", "message": repr(err)}})

    def _send(self, reply: Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if reply.body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", "emulator")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    # -- Resource Manager ------------------------------------------------------------

    def _arm(self, path: str, query: dict[str, str], raw: bytes) -> Reply:
        self._authenticate()
        if not query.get("api-version"):
            raise EmulatorError(
                400, "MissingApiVersionParameter", "The api-version query parameter is required."
            )
        match = ROUTE_SERVICE.fullmatch(path)
        if match and self.command == "GET":
            return Reply(200, self.emulator.get_service(match["sub"], match["rg"], match["name"]))
        match = ROUTE_WORKSPACE_LINKS.fullmatch(path)
        if match and self.command == "GET":
            links = self.emulator.list_workspace_links(match["sub"], match["rg"], match["name"])
            return Reply(200, links)
        match = ROUTE_DIAGNOSTIC_SETTINGS.fullmatch(path)
        if match and self.command == "GET":
            settings = self.emulator.list_diagnostic_settings(
                match["sub"], match["rg"], match["name"]
            )
            return Reply(200, settings)
        match = ROUTE_ROLE_ASSIGNMENTS.fullmatch(path)
        if match and self.command == "GET":
            return self._role_assignments(match["scope"], query.get("$filter"))
        if self.command == "GET" and "/providers/microsoft.storage/" in path.lower():
            return self._storage(path)
        match = ROUTE_LRO.fullmatch(path)
        if match and self.command == "POST":
            kind = match["kind"].lower()
            operation = self.emulator.start_operation(
                kind, match["sub"], match["rg"], match["name"], _parse_json(raw)
            )
            return Reply(202, None, self._running_headers(operation))
        match = ROUTE_OPERATION.fullmatch(path)
        if match and self.command == "GET":
            operation = self.emulator.poll(match["sub"], match["rg"], match["name"], match["opid"])
            return self._operation_reply(operation)
        match = ROUTE_CHILD.fullmatch(path)
        if match:
            key = (match["sub"], match["rg"], match["name"])
            status, body = self.emulator.child(
                self.command, key, match["collection"], match["child"], _parse_json(raw)
            )
            return Reply(status, body)
        raise EmulatorError(
            404, "NotFound", f"The emulator has no route for {self.command} {path}."
        )

    def _role_assignments(self, scope: str, query_filter: str | None) -> Reply:
        principal = None
        if query_filter:
            match = ASSIGNED_TO.fullmatch(query_filter)
            if match is None:
                raise EmulatorError(
                    400, "InvalidFilter", "The emulator understands only $filter=assignedTo('id')."
                )
            principal = match["principal"].lower()
        return Reply(200, self.emulator.list_role_assignments(scope, principal))

    def _storage(self, path: str) -> Reply:
        """The backup account's control plane: the account, its blob service, a container."""
        match = ROUTE_ACCOUNT.fullmatch(path)
        if match:
            return Reply(
                200, self.emulator.get_storage_account(match["sub"], match["rg"], match["name"])
            )
        match = ROUTE_BLOB_SERVICE.fullmatch(path)
        if match:
            return Reply(
                200, self.emulator.get_blob_service(match["sub"], match["rg"], match["name"])
            )
        match = ROUTE_CONTAINER.fullmatch(path)
        if match:
            container = self.emulator.get_container(
                match["sub"], match["rg"], match["name"], match["container"]
            )
            return Reply(200, container)
        raise EmulatorError(404, "NotFound", f"The emulator has no route for GET {path}.")

    def _authenticate(self) -> None:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise EmulatorError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing or is not a "
                "bearer token.",
            )

    def _running_headers(self, operation: Operation) -> dict[str, str]:
        location = (
            f"{self.server.base_url}{operation.service_id}/operationresults/"
            f"{operation.id}?api-version={API_VERSION}"
        )
        return {"Location": location, "Retry-After": str(self.emulator.settings.retry_after)}

    def _operation_reply(self, operation: Operation) -> Reply:
        if operation.running:
            return Reply(202, None, self._running_headers(operation))
        if operation.status == "Succeeded":
            return Reply(200, operation.result)
        return Reply(400, {"error": operation.error})

    # -- controls --------------------------------------------------------------------

    def _control(self, path: str, raw: bytes) -> Reply:
        body = _parse_json(raw)
        args = body if isinstance(body, dict) else {}
        emulator, method = self.emulator, self.command
        if path == "/_emulator/reset" and method == "POST":
            emulator.reset(body if isinstance(body, dict) and body else None)
            return Reply(200, {"status": "reset"})
        if path == "/_emulator/clock" and method == "GET":
            return Reply(200, {"now": emulator.now().isoformat()})
        if path == "/_emulator/clock/advance" and method == "POST":
            return Reply(200, {"now": emulator.advance(float(args.get("seconds", 0))).isoformat()})
        if path == "/_emulator/clock/set" and method == "POST":
            moment = _moment(args, "now")
            return Reply(200, {"now": emulator.set_clock(moment).isoformat()})
        if path == "/_emulator/settings" and method in ("GET", "POST"):
            return Reply(200, emulator.update_settings(args))
        if path == "/_emulator/faults" and method == "POST":
            emulator.add_fault(args)
            return Reply(201, {"status": "added"})
        if path == "/_emulator/faults" and method == "DELETE":
            emulator.clear_faults()
            return Reply(200, {"status": "cleared"})
        if path == "/_emulator/requests" and method == "GET":
            return Reply(200, {"value": emulator.requests()})
        if path == "/_emulator/requests" and method == "DELETE":
            emulator.clear_requests()
            return Reply(200, {"status": "cleared"})
        if path == "/_emulator/operations" and method == "GET":
            return Reply(200, {"value": emulator.list_operations()})
        if path == "/_emulator/role-assignments" and method == "GET":
            return Reply(200, {"value": emulator.role_assignments})
        if path == "/_emulator/role-assignments" and method == "PUT":
            return Reply(200, emulator.set_role_assignments(args))
        if path == "/_emulator/storage" and method == "GET":
            return Reply(200, emulator.describe_storage())
        if path == "/_emulator/storage" and method == "PATCH":
            return Reply(200, emulator.patch_storage(args))
        if path.startswith("/_emulator/events"):
            return self._control_events(path, args)
        if path == "/_emulator/operations/changed" and method == "POST":
            since = _moment(args, "since")
            return Reply(200, {"value": emulator.list_operations(since)})
        match = ROUTE_CONTROL_SERVICE.fullmatch(path)
        if match:
            return self._control_service(match["name"], match["rest"] or "", args)
        raise EmulatorError(404, "NotFound", f"No control route {method} {path}.")

    def _control_events(self, path: str, args: JSON) -> Reply:
        """Where events go (one subscriber URL), what was published, and waiting for it."""
        events, method = self.emulator.events, self.command
        if path == "/_emulator/events/subscriber" and method == "GET":
            return Reply(200, events.subscription())
        if path == "/_emulator/events/subscriber" and method == "POST":
            return Reply(200, events.subscribe(args))
        if path == "/_emulator/events/subscriber" and method == "DELETE":
            return Reply(200, events.subscribe({"url": None}))
        if path == "/_emulator/events" and method == "GET":
            return Reply(200, {"value": events.events()})
        if path == "/_emulator/events" and method == "DELETE":
            events.clear()
            return Reply(200, {"status": "cleared"})
        if path == "/_emulator/events/drain" and method == "POST":
            drained = events.drain(float(args.get("timeout", 30)))
            return Reply(200 if drained else 504, {"drained": drained})
        raise EmulatorError(404, "NotFound", f"No control route {method} {path}.")

    def _control_service(self, name: str, rest: str, args: JSON) -> Reply:
        emulator, method = self.emulator, self.command
        if rest == "" and method == "GET":
            return Reply(200, emulator.describe_service(name))
        if rest == "" and method == "PATCH":
            return Reply(200, emulator.patch_service(name, args))
        if rest == "/configuration" and method == "GET":
            return Reply(200, emulator.describe_service(name)["configuration"])
        if rest == "/fail-next" and method == "POST":
            emulator.set_fail_next(name, args)
            return Reply(200, {"status": "armed"})
        raise EmulatorError(
            404, "NotFound", f"No control route {method} /_emulator/services/{name}{rest}."
        )


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as err:
        raise EmulatorError(400, "InvalidRequestContent", f"The body is not JSON: {err}") from err


def _moment(args: JSON, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(args.get(name)))
    except ValueError as err:
        raise EmulatorError(400, "InvalidParameters", f"'{name}' must be an ISO 8601 time") from err
    if moment.tzinfo is None:
        raise EmulatorError(400, "InvalidParameters", f"'{name}' must carry its UTC offset")
    return moment


def _redact(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    return {key: "<redacted>" if key in SECRET_FIELDS else value for key, value in body.items()}


def _fault_reply(fault: Fault) -> Reply:
    code = fault.code or FAULT_CODES.get(
        fault.status, HTTPStatus(fault.status).phrase.replace(" ", "")
    )
    message = fault.message or "Injected fault."
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    return Reply(fault.status, {"error": {"code": code, "message": message}}, headers)


def make_tls(ca_dir: Path) -> ssl.SSLContext:
    """A fresh CA (written to ``ca_dir/ca.pem`` for clients) and a loopback server cert."""
    import trustme  # only the server needs it

    ca = trustme.CA()
    ca_dir.mkdir(parents=True, exist_ok=True)
    partial = ca_dir / "ca.pem.partial"
    ca.cert_pem.write_to_path(str(partial))
    partial.replace(ca_dir / "ca.pem")  # readers never see half a file
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context
