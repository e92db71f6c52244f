"""A stand-in for the Functions host's HTTP front, for the tests and ``make up``.

The app's HTTP functions served on loopback under /api/<route>, each demanding its own
function key (or the host key) in ``x-functions-key`` or ``?code=``, as the real host does
at AuthLevel.FUNCTION; a path or method no function serves is 404, as on the host.

With ``easy_auth`` it stands in for App Service authentication instead (API_AUTH=entra,
routes anonymous): a request without a known ``Authorization: Bearer`` token gets 401
before any function runs, a caller's own ``X-MS-CLIENT-PRINCIPAL*`` headers are removed,
and the token's app roles reach the function in ``X-MS-CLIENT-PRINCIPAL`` (base64 JSON
with ``claims``), as the platform passes them.

The real host (Core Tools) cannot be installed here; this lets a real HTTP client (the
runbook, curl, schemathesis) talk to the real handlers.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, partial
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

import function_app
from devstack.loopback import LoopbackServer
from devstack.worker import Worker

Handler = Callable[[func.HttpRequest], func.HttpResponse]


@dataclass(frozen=True)
class Route:
    name: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    handler: Handler


def _route_pattern(route: str) -> re.Pattern[str]:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", route)
    return re.compile(f"^/api/{regex}$")


def _host_order(routes: list[Route]) -> tuple[Route, ...]:
    # Literal routes before templated ones, as the host orders them.
    return tuple(sorted(routes, key=lambda r: "{" in r.pattern.pattern))


@cache
def http_routes() -> tuple[Route, ...]:
    """The app's HTTP functions, read once (FunctionApp.get_functions may run only once)."""
    routes = []
    for fn in function_app.app.get_functions():
        trigger = fn.get_trigger()
        route = getattr(trigger, "route", None)
        name = fn.get_function_name()
        if route is None or name is None:
            continue
        methods = frozenset(str(getattr(m, "value", m)) for m in getattr(trigger, "methods", ()))
        routes.append(Route(name, _route_pattern(route), methods, fn.get_user_function()))
    return _host_order(routes)


def worker_routes(worker: Worker) -> tuple[Route, ...]:
    """The HTTP functions as the runtime reported them to the host (their raw bindings)."""
    routes = []
    for function in worker.functions.values():
        trigger = function.trigger
        if trigger["type"] != "httpTrigger":
            continue
        methods = frozenset(str(m).upper() for m in trigger.get("methods", ()))
        handler = partial(worker.invoke_http, function.name)
        routes.append(Route(function.name, _route_pattern(trigger["route"]), methods, handler))
    return _host_order(routes)


def query_params(query: str) -> dict[str, str]:
    """The query as the host hands it to a function: blank values kept (``?dryRun=`` is not
    an absent dryRun), and a repeated name's values joined by commas (.NET's StringValues)
    rather than the last one silently winning."""
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(name, []).append(value)
    return {name: ",".join(found) for name, found in values.items()}


def client_principal(roles: Sequence[str], name: str = "caller") -> str:
    """The X-MS-CLIENT-PRINCIPAL value App Service authentication sends for a caller."""
    claims = [{"typ": "name", "val": name}] + [{"typ": "roles", "val": r} for r in roles]
    body = {"auth_typ": "aad", "name_typ": "name", "role_typ": "roles", "claims": claims}
    return base64.b64encode(json.dumps(body).encode()).decode()


EVENT_GRID_WEBHOOK = "/runtime/webhooks/eventgrid"


class FunctionHost:
    """Serves the HTTP functions: called directly, or through the Functions runtime when
    given a started ``devstack.worker.Worker`` (the routes are then those the runtime
    indexed, and each request is an invocation through the runtime, as in Azure)."""

    def __init__(
        self,
        function_keys: dict[str, str],
        host_key: str,
        *,
        port: int = 0,
        worker: Worker | None = None,
        easy_auth: Mapping[str, Sequence[str]] | None = None,
        system_key: str | None = None,
    ) -> None:
        self.function_keys = function_keys
        self.host_key = host_key
        # The host's eventgrid_extension system key, for /runtime/webhooks/eventgrid.
        self.system_key = system_key
        self.worker = worker
        self.easy_auth = easy_auth  # bearer token -> the caller's app roles
        self.routes = http_routes() if worker is None else worker_routes(worker)
        self.calls: list[tuple[str, str, int]] = []
        # Answer this many status requests 503, as a host restarting or scaling would.
        self.unavailable = 0
        host = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host._serve(self)

            def do_POST(self) -> None:
                host._serve(self)

            def __getattr__(self, name: str) -> Any:
                # Any other method (PUT, TRACE, QUERY...) gets the host's answer for a
                # method no function serves (404), not the standard library's 501.
                if name.startswith("do_"):
                    return self.do_POST
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = LoopbackServer(_Handler, port)

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> FunctionHost:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        params = query_params(parts.query)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        status, headers, payload = self._dispatch(
            request.command, parts.path, params, request, body
        )
        self.calls.append((request.command, parts.path, status))
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _dispatch(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        request: BaseHTTPRequestHandler,
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        if path == EVENT_GRID_WEBHOOK:
            return self._event_grid(method, params, request, body)
        headers = dict(request.headers.items())
        if self.easy_auth is not None:
            headers = {
                k: v
                for k, v in headers.items()
                if not k.lower().startswith("x-ms-client-principal")
            }
            scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or token not in self.easy_auth:
                return 401, {"WWW-Authenticate": "Bearer"}, b""
            headers["X-MS-CLIENT-PRINCIPAL"] = client_principal(self.easy_auth[token])
        for route in self.routes:
            match = route.pattern.match(path)
            if match is None or method not in route.methods:
                continue
            key = request.headers.get("x-functions-key") or params.pop("code", None)
            # No key is no key, also for a function that has none of its own.
            if self.easy_auth is None and (
                key is None or key not in (self.function_keys.get(route.name), self.host_key)
            ):
                return 401, {}, b""
            if route.name == "get_operation" and self.unavailable > 0:
                self.unavailable -= 1
                return 503, {"Retry-After": "1"}, b""
            req = func.HttpRequest(
                method,
                f"{self.url}{path}",
                headers=headers,
                params=params,
                # The host passes route values decoded.
                route_params={k: unquote(v) for k, v in match.groupdict().items()},
                body=body,
            )
            response = route.handler(req)
            headers = dict(response.headers.items())
            headers.setdefault("Content-Type", response.mimetype or "application/json")
            return response.status_code, headers, response.get_body()
        return 404, {}, b""

    def _event_grid(
        self, method: str, params: dict[str, str], request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """The host's Event Grid webhook: ``?functionName=<name>&code=<system key>``, a
        JSON array of events, one invocation (through the runtime) per event. A failed
        invocation answers 500, so that the sender retries, as Event Grid does."""
        key = params.get("code") or request.headers.get("x-functions-key")
        if method != "POST":
            return 404, {}, b""
        if self.worker is None or key is None or key not in (self.system_key, self.host_key):
            return 401, {}, b""
        name = params.get("functionName", "")
        function = self.worker.functions.get(name)
        if function is None or function.trigger["type"] != "eventGridTrigger":
            return 404, {}, b""
        try:
            events = json.loads(body)
        except ValueError:
            return 400, {}, b""
        kind = request.headers.get("aeg-event-type", "")
        if kind == "SubscriptionValidation" and isinstance(events, list) and events:
            code = (events[0].get("data") or {}).get("validationCode", "")
            answer = json.dumps({"validationResponse": code}).encode()
            return 200, {"Content-Type": "application/json"}, answer
        if kind != "Notification" or not isinstance(events, list):
            return 400, {}, b""
        try:
            for event in events:
                self.worker.event_grid(name, event)
        except AssertionError:  # InvocationFailed: the function (or its decoder) failed
            return 500, {}, b""
        return 202, {}, b""
