"""HTTP plumbing for function_app.py: JSON bodies, ARM-shaped errors, status URLs."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import azure.functions as func

from shared.api import auth
from shared.rules import errors
from shared.runtime import get_runtime
from shared.settings.parse import ConfigError

if TYPE_CHECKING:
    # A type only: function_app.py imports this module at load, and the core
    # (shared.jobs.operations and all it imports) loads when a trigger first runs (issue 9).
    from shared.jobs.operations import Progress

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# The product's bodies are flat objects; anything deeper is not a request of ours.
MAX_JSON_DEPTH = 32
# Longer than any value a route takes (the longest, an APIM resource ID, is 250).
MAX_VALUE_LENGTH = 256


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, default=str),
        status_code=status,
        headers=headers,
        mimetype="application/json",
    )


def error_response(error: errors.ProductError) -> func.HttpResponse:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
    return json_response(error.to_body(), error.status, headers)


def read_json(
    req: func.HttpRequest, *, optional: bool = False, fields: Collection[str] | None = None
) -> dict[str, Any]:
    """The request's JSON object body; BadRequest for anything else (see ``json_object``).

    With ``fields``, a key outside it is refused: a mistyped ``dryRun`` must not start
    a real restore (ARM's own deserialiser refuses unknown members the same way).
    """
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:  # before anything walks it
        raise errors.BadRequest(f"The request body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        if optional:
            return {}
        raise errors.BadRequest("A JSON body is required")
    body = json_object(raw, "The request body")
    if fields is not None:
        unknown = sorted(set(body) - set(fields))
        if unknown:
            names = ", ".join(repr(k[:50]) for k in unknown[:10])
            expected = ", ".join(sorted(fields)) or "none"
            raise errors.BadRequest(
                f"Unknown field(s) in the request body: {names} (expected: {expected})"
            )
    return body


def json_object(raw: bytes, what: str) -> dict[str, Any]:
    """``raw`` as a JSON object, or BadRequest saying what is wrong with ``what`` (a body,
    a decoded header). JSON must be UTF-8 (RFC 8259; a leading BOM is tolerated), at most
    MAX_BODY_BYTES, nested at most MAX_JSON_DEPTH deep, without duplicate keys or the
    non-standard NaN/Infinity."""
    if len(raw) > MAX_BODY_BYTES:
        raise errors.BadRequest(f"{what} is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise errors.BadRequest(
            f"{what} is not valid UTF-8 (byte {exc.start}); JSON must be UTF-8"
        ) from None
    if nesting_exceeds(text, MAX_JSON_DEPTH):
        raise errors.BadRequest(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_refuse_constant)
    except _DuplicateKey as exc:
        raise errors.BadRequest(f"{what} repeats the key '{exc.key[:100]}'") from None
    except (ValueError, RecursionError):
        # RecursionError only as a second line: nesting_exceeds has bounded the depth.
        raise errors.BadRequest(f"{what} is not valid JSON") from None
    if not isinstance(body, dict):
        raise errors.BadRequest(f"{what} must be a JSON object")
    return body


def nesting_exceeds(text: str, limit: int) -> bool:
    """Whether arrays and objects in ``text`` nest deeper than ``limit`` (brackets inside
    strings do not count). Checked before parsing rather than by catching RecursionError:
    the parser's own limit depends on the interpreter and the thread's stack, so the same
    body could be a 400 on one host and crash another; this answers the same everywhere,
    in one pass over at most MAX_BODY_BYTES."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are unique: two values for one key is ambiguous (a proxy in
    front may have checked the first while Python keeps the last)."""
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise _DuplicateKey(key)
        body[key] = value
    return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def string_field(
    body: dict[str, Any], name: str, *, required: bool, max_length: int = MAX_VALUE_LENGTH
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise errors.BadRequest(f"'{name}' is required", name)
        return None
    if not isinstance(value, str) or not value.strip():
        raise errors.BadRequest(f"'{name}' must be a non-empty string", name)
    return bounded(value.strip(), name, max_length)


def query_value(req: func.HttpRequest, name: str, max_length: int = MAX_VALUE_LENGTH) -> str | None:
    """A query parameter, stripped; None when absent or blank; BadRequest when too long or
    holding control characters (no legitimate value has them)."""
    value = req.params.get(name)
    if value is None or not value.strip():
        return None
    return bounded(value.strip(), name, max_length)


def bounded(value: str, name: str, max_length: int) -> str:
    if len(value) > max_length:
        raise errors.BadRequest(f"'{name}' is longer than {max_length} characters", name)
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in value):
        raise errors.BadRequest(f"'{name}' contains control or invalid characters", name)
    return value


def bool_value(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if value is None:
        return False
    # A blank value too: an empty ``?dryRun=`` must not mean a real prune.
    raise errors.BadRequest(f"'{name}' must be true or false", name)


def refuse_query(req: func.HttpRequest, name: str, reason: str) -> None:
    """BadRequest when the query names ``name``: for a parameter that belongs elsewhere,
    so that it is not silently ignored (``?dryRun=true`` on a real restore)."""
    if name in req.params:
        raise errors.BadRequest(reason, name)


def status_url(req: func.HttpRequest, operation_id: str) -> str:
    """The absolute URL of an operation's status, on the host that was called."""
    parts = urlsplit(req.url)
    return f"{parts.scheme}://{parts.netloc}/api/operations/{operation_id}"


def accepted(
    req: func.HttpRequest, progress: Progress, extra: dict[str, Any] | None = None
) -> func.HttpResponse:
    """202 with Location and Retry-After while running; 200 once the operation has ended."""
    url = status_url(req, progress.operation.operation_id)
    body = progress.operation.to_api(url)
    if extra:
        body.update(extra)
    if progress.operation.is_running:
        headers = {"Location": url, "Retry-After": str(progress.retry_after)}
        return json_response(body, 202, headers)
    return json_response(body, 200)


def handle(
    action: Callable[[], func.HttpResponse],
    req: func.HttpRequest | None = None,
    *,
    role: str | None = None,
) -> func.HttpResponse:
    """Run a route's action; turn the core's refusals into ARM-shaped errors.

    With ``req``, the caller is checked first (API_AUTH, shared/api/auth.py): with entra,
    an unauthenticated request, or one without ``role``, gets 401/403 and nothing runs.
    """
    try:
        if req is not None:
            auth.authorize(req.headers, get_runtime().settings.api_auth, role)
        return action()
    except errors.ProductError as exc:
        if exc.status >= 500:
            log.error("Request failed: %s (%s)", exc.message, exc.code)
        return error_response(exc)
    except ConfigError as exc:
        # The message names the setting only; a secret's value is never in it.
        log.error("Configuration error: %s", exc)
        return json_response({"error": {"code": "ConfigurationError", "message": str(exc)}}, 500)
    except Exception as exc:
        unavailable = dependency_unavailable(exc)
        if unavailable is None:
            log.exception("Unexpected error")
            return _internal_error()
        # The type and status only: an SDK message may quote a URL, which may carry a SAS.
        log.error("Request failed: %s", unavailable.message)
        return error_response(unavailable)


def _internal_error() -> func.HttpResponse:
    body = {
        "error": {"code": "InternalError", "message": "An unexpected error occurred; see the logs"}
    }
    return json_response(body, 500)


# SDK packages by the dependency they talk to. Judged from the frames the exception went
# through (its traceback), so that any adapter's unwrapped failure is named correctly.
_DEPENDENCY_PACKAGES = (
    ("azure.data.tables", "storage"),
    ("azure.storage.blob", "storage"),
    ("azure.mgmt.", "resourceManager"),
)


def dependency_unavailable(exc: Exception) -> errors.DependencyUnavailable | None:
    """The DependencyUnavailable an SDK failure amounts to, or None when it is not one.

    Unavailable: no connection, a dropped one or a timeout, the service failing or
    throttling (408, 429, 5xx), or refusing our credentials (401, 403): the request may
    succeed later, and the caller needs to know which dependency to look at. Any other
    answer (a 400, a 404 on a table) is a bug of ours, and stays a 500.
    """
    # Imported here, not at load: a cold start must not pay for azure.core (issue 9).
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if not isinstance(exc, AzureError):
        return None
    dependency = _dependency_of(exc)
    if dependency is None:
        return None
    if isinstance(exc, ClientAuthenticationError):
        status = exc.status_code
    elif isinstance(exc, HttpResponseError):
        # Storage answers a missing data role (AuthorizationPermissionMismatch) or its
        # firewall (AuthorizationFailure) with a plain 403, not ClientAuthenticationError.
        status = exc.status_code
        if status is None or not (status in (401, 403, 408, 429) or status >= 500):
            return None
    elif isinstance(exc, ServiceRequestError | ServiceResponseError):
        status = None
    else:
        return None
    cause = type(exc).__name__ + (f" (HTTP {status})" if status else "")
    return errors.DependencyUnavailable(dependency, cause)


def _dependency_of(exc: BaseException) -> str | None:
    for frame, _line in traceback.walk_tb(exc.__traceback__):
        module = str(frame.f_globals.get("__name__", ""))
        for package, dependency in _DEPENDENCY_PACKAGES:
            if module.startswith(package):
                return dependency
    return None
