"""Drive the app through ``azure_functions_runtime`` exactly as the proxy worker does.

The sequence is the host's: ``WorkerInitRequest`` (the runtime imports function_app.py
and indexes it), ``FunctionsMetadataRequest`` (the functions and bindings the host
registers), one ``FunctionLoadRequest`` per function, then ``InvocationRequest``s carrying
the trigger's data as the host encodes it (``RpcHttp`` for HTTP, the timer's JSON).

Like the proxy, it runs the runtime's handlers on one event loop (a thread of its own
here), so invocations from several threads (an HTTP server's) run concurrently. The
runtime keeps its state in module globals: one Worker at a time per process.
Used by tests/runtime, the schemathesis run and ``make up`` (through devstack.funchost).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import urlencode, urlsplit

import azure.functions as func
import azure_functions_runtime as runtime

from devstack.protocol import WorkerRequest, build

REPO = Path(__file__).resolve().parents[1]
APP_MODULE = "function_app"


@dataclass(frozen=True)
class Indexed:
    """One function as the host registers it: its metadata and its raw bindings, parsed."""

    name: str
    function_id: str
    bindings: tuple[dict[str, Any], ...]

    @property
    def trigger(self) -> dict[str, Any]:
        (found,) = [b for b in self.bindings if str(b["type"]).endswith("Trigger")]
        return found

    def describe(self) -> str:
        """One line: name, trigger and what the host reads from it."""
        trigger = self.trigger
        if trigger["type"] == "httpTrigger":
            methods = ",".join(trigger.get("methods", []))
            where = f"{methods} /api/{trigger['route']} authLevel={trigger['authLevel']}"
        elif trigger["type"] == "eventGridTrigger":
            where = "Event Grid events (Event Grid schema)"
        else:
            where = f"schedule={trigger['schedule']} runOnStartup={trigger.get('runOnStartup')}"
        return f"{self.name:<18} {trigger['type']:<12} {where}"


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class InvocationFailed(AssertionError):
    pass


class Worker:
    """The runtime behind a stand-in proxy; one at a time per process (its state is global)."""

    def __init__(self) -> None:
        self.protos: SimpleNamespace = build()
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self.loop.run_forever, name="functions-worker-loop", daemon=True
        )
        self.functions: dict[str, Indexed] = {}
        self.init_response: Any = None
        self._previous_app: ModuleType | None = None

    def _send(self, handler: Any, name: str, **content: Any) -> Any:
        message = self.protos.StreamingMessage(request_id=uuid.uuid4().hex, **content)
        properties = {"protos": self.protos, "host": "127.0.0.1"}
        call = handler(WorkerRequest(name, message, properties))
        return asyncio.run_coroutine_threadsafe(call, self.loop).result(timeout=300)

    def start(self, directory: Path = REPO) -> None:
        """Initialise the runtime and index the app; on any failure, leave nothing behind."""
        # A worker is a fresh process: it imports function_app.py itself. Set aside any
        # copy this process already imported (FunctionApp indexes once per object).
        self._previous_app = sys.modules.pop(APP_MODULE, None)
        importlib.invalidate_caches()
        self._loop_thread.start()
        runtime.start_threadpool_executor()
        try:
            self._index(directory)
        except BaseException:
            self.stop()
            raise

    def _index(self, directory: Path) -> None:
        init = self.protos.WorkerInitRequest(
            host_version="4.1000.0",
            function_app_directory=str(directory),
            capabilities={"RpcHttpBodyOnly": "true", "RawHttpBodyBytes": "true"},
        )
        self.init_response = self._send(
            runtime.worker_init_request, "WorkerInitRequest", worker_init_request=init
        )
        self._check(self.init_response.result, "WorkerInitRequest")
        metadata = self._send(
            runtime.functions_metadata_request,
            "WorkerMetadataRequest",
            functions_metadata_request=self.protos.FunctionsMetadataRequest(
                function_app_directory=str(directory)
            ),
        )
        self._check(metadata.result, "FunctionsMetadataRequest")
        assert not metadata.use_default_metadata_indexing, "the worker asked for function.json"
        for meta in metadata.function_metadata_results:
            loaded = self._send(
                runtime.function_load_request,
                "FunctionLoadRequest",
                function_load_request=self.protos.FunctionLoadRequest(
                    function_id=meta.function_id, metadata=meta
                ),
            )
            self._check(loaded.result, f"FunctionLoadRequest {meta.name}")
            bindings = tuple(json.loads(raw) for raw in meta.raw_bindings)
            self.functions[meta.name] = Indexed(meta.name, meta.function_id, bindings)

    def stop(self) -> None:
        runtime.stop_threadpool_executor()
        if self._loop_thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._loop_thread.join(timeout=10)
        self.loop.close()
        if self._previous_app is not None:
            sys.modules[APP_MODULE] = self._previous_app

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _check(self, result: Any, what: str) -> None:
        if result.status != self.protos.StatusResult.Success:
            raise InvocationFailed(f"{what} failed: {result.exception.message}")

    def _invoke(self, name: str, arg: str, data: Any) -> Any:
        function = self.functions[name]
        request = self.protos.InvocationRequest(
            invocation_id=uuid.uuid4().hex,
            function_id=function.function_id,
            input_data=[self.protos.ParameterBinding(name=arg, data=data)],
        )
        response = self._send(
            runtime.invocation_request, "FunctionInvocationRequest", invocation_request=request
        )
        self._check(response.result, f"invocation of {name}")
        return response

    def http(
        self,
        name: str,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        query: dict[str, str] | None = None,
        route_params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        origin: str = "https://backup.example.net",
    ) -> HttpAnswer:
        """Invoke an HTTP function with the request the host would pass it."""
        trigger = self.functions[name].trigger
        url = f"{origin}/api/{path}"
        if query:
            url += "?" + urlencode(query)
        http = self.protos.RpcHttp(
            method=method,
            url=url,
            headers={"content-type": "application/json"} if headers is None else headers,
            body=self.protos.TypedData(bytes=body),
            params=route_params or {},
            query=query or {},
        )
        response = self._invoke(name, trigger["name"], self.protos.TypedData(http=http))
        returned = response.return_value.http
        return HttpAnswer(int(returned.status_code), dict(returned.headers), returned.body.bytes)

    def invoke_http(self, name: str, req: func.HttpRequest) -> func.HttpResponse:
        """The same request, as an invocation through the runtime (for devstack.funchost)."""
        parts = urlsplit(req.url)
        answer = self.http(
            name,
            req.method,
            parts.path.removeprefix("/api/"),
            body=req.get_body(),
            query=dict(req.params),
            route_params=dict(req.route_params),
            headers=dict(req.headers),
            origin=f"{parts.scheme}://{parts.netloc}",
        )
        headers = dict(answer.headers)
        mimetype = headers.pop("content-type", None)
        return func.HttpResponse(
            answer.body, status_code=answer.status, headers=headers, mimetype=mimetype
        )

    def event_grid(self, name: str, event: Any) -> None:
        """Invoke an Event Grid function with one event, as the host passes each element
        of a delivered array: the event's JSON object, as a json datum."""
        trigger = self.functions[name].trigger
        response = self._invoke(
            name, trigger["name"], self.protos.TypedData(json=json.dumps(event))
        )
        assert not response.HasField("return_value"), f"{name} returned a value"

    def timer(self, name: str, *, past_due: bool = False) -> None:
        """Fire a timer function with the payload the host's timer trigger sends."""
        trigger = self.functions[name].trigger
        payload = {
            "Schedule": {"AdjustForDST": True},
            "ScheduleStatus": None,
            "IsPastDue": past_due,
        }
        response = self._invoke(
            name, trigger["name"], self.protos.TypedData(json=json.dumps(payload))
        )
        assert not response.HasField("return_value"), f"{name} returned a value"
