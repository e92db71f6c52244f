"""Helpers for the tests of runbooks/restore_apim.py (the runbook and pipeline client).

The client is always run as its own process, under Python 3.10 when this machine has it
(Automation's runtime for Python runbooks), so that a 3.11+ construct slipping into it
fails a test. ``RecordingHost`` is the stand-in Functions host that also records how each
request authenticated, and with ``bearer_token`` stands in for App Service
authentication. ``StubServer`` is a small recording HTTP(S) server on loopback for answers
the real app never gives (a foreign status URL, a redirect, a managed identity endpoint).
"""

from __future__ import annotations

import base64
import glob
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devstack.loopback import LoopbackServer
from tests.funchost import FunctionHost

RUNBOOK = Path(__file__).resolve().parents[1] / "runbooks" / "restore_apim.py"


@cache
def client_python() -> str:
    """Python 3.10 (on PATH or through pyenv) when there is one, else this interpreter."""
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = sorted(glob.glob(f"{root}/versions/3.10*/bin/python3.10"), reverse=True)
    on_path = shutil.which("python3.10")
    for candidate in [*candidates, *([on_path] if on_path else [])]:
        probe = subprocess.run(
            [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 10)"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return candidate
    return sys.executable


def run_client(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the client with exactly this environment (plus PATH)."""
    return subprocess.run(
        [client_python(), str(RUNBOOK), *args],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names


Answer = tuple[int, dict[str, str], Any]
Responder = Callable[[Seen], Answer]


@dataclass
class StubServer:
    """Answers every request with ``respond(seen)`` and records it; HTTPS with ``tls``."""

    respond: Responder = field(default=lambda seen: (404, {}, {"error": {"code": "NotFound"}}))
    tls: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        stub = self

        class _Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                seen = Seen(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                )
                stub.seen.append(seen)
                status, headers, body = stub.respond(seen)
                payload = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = LoopbackServer(_Handler, tls=self.tls)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> StubServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


class RecordingHost(FunctionHost):
    """The stand-in host, recording each request's credentials: (x-functions-key,
    Authorization).

    With ``bearer_token`` it stands in for App Service authentication (Easy Auth, API_AUTH
    ``entra``) instead of the key check: only ``Authorization: Bearer <bearer_token>``
    gets through (401 otherwise, as the platform answers), function keys count for
    nothing, and the handler sees the platform's ``X-MS-CLIENT-PRINCIPAL`` (base64 JSON of
    the caller's claims, with ``roles``) in place of any the caller sent.
    """

    def __init__(
        self,
        function_keys: dict[str, str],
        host_key: str,
        bearer_token: str | None = None,
        roles: tuple[str, ...] = ("ApimBackup.Restore",),
    ) -> None:
        super().__init__(function_keys, host_key)
        self.bearer_token = bearer_token
        self.roles = roles
        self.credentials: list[tuple[str | None, str | None]] = []

    def __enter__(self) -> RecordingHost:
        super().__enter__()
        return self

    def _dispatch(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        request: BaseHTTPRequestHandler,
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        headers = request.headers
        self.credentials.append((headers.get("x-functions-key"), headers.get("Authorization")))
        if self.bearer_token is not None:
            if headers.get("Authorization") != f"Bearer {self.bearer_token}":
                return 401, {}, b""
            del headers["X-MS-CLIENT-PRINCIPAL"], headers["x-functions-key"]
            headers["X-MS-CLIENT-PRINCIPAL"] = self._principal()
            # Past the platform, the key check is not the gate: let the base pass it.
            params = {**params, "code": self.host_key}
        return super()._dispatch(method, path, params, request, body)

    def _principal(self) -> str:
        claims = [{"typ": "roles", "val": role} for role in self.roles]
        principal = {"auth_typ": "aad", "claims": claims, "role_typ": "roles"}
        return base64.b64encode(json.dumps(principal).encode()).decode()


def easy_auth_host(bearer_token: str) -> RecordingHost:
    """A host that lets only this bearer token through; no key of it is ever handed out."""
    return RecordingHost({}, host_key=secrets.token_hex(16), bearer_token=bearer_token)
