"""HTTP plumbing for function_app.py: JSON bodies, ARM-shaped errors, status URLs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from shared import auth, errors
from shared.operations import Progress
from shared.runtime import get_runtime
from shared.settings import ConfigError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


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
    return json_response(error.to_body(), error.status)


def read_json(req: func.HttpRequest, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object body; BadRequest for anything else."""
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:
        raise errors.BadRequest("The request body is too large")
    if not raw.strip():
        if optional:
            return {}
        raise errors.BadRequest("A JSON body is required")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise errors.BadRequest("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise errors.BadRequest("The request body must be a JSON object")
    return body


def string_field(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise errors.BadRequest(f"'{name}' is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise errors.BadRequest(f"'{name}' must be a non-empty string")
    return value.strip()


def bool_value(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if value is None:
        return False
    raise errors.BadRequest(f"'{name}' must be true or false")


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

    With ``req``, the caller is checked first (API_AUTH, shared/auth.py): with entra,
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
    except Exception:
        log.exception("Unexpected error")
        return json_response(
            {
                "error": {
                    "code": "InternalError",
                    "message": "An unexpected error occurred; see the logs",
                }
            },
            500,
        )
