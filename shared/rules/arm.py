"""Resource Manager's answers, judged: when a throttled start is tried again and after
how long, which answers leave a start unconfirmed (a 409 after a retried try among
them), what a refused status request says and advises, and what an Azure-AsyncOperation
body says.

The APIM adapter (shared.adapters.apim) makes the calls and hands the answers' status,
headers and bodies here; these decisions need no SDK, so tests and the docs find them
in one place (docs/reliability.md).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from shared.rules.naming import ServiceId
from shared.rules.service import PollResult, PollState, arm_error_message

# A start that Resource Manager throttles (429, or 503 with Retry-After: the request was
# not accepted) is tried again after the wait it asks for, at most this often and this
# long in all; an HTTP trigger must answer within 230 s.
START_TRIES = 3
START_RETRY_BUDGET_SECONDS = 60.0
# A 429 without Retry-After: wait this long before the next try.
DEFAULT_THROTTLE_WAIT_SECONDS = 5.0
# Answers to a start that say nothing about whether APIM took it.
AMBIGUOUS_START_STATUSES = frozenset({500, 502, 503, 504})


def throttle_wait(status: int | None, retry_after: str | None, now: datetime) -> float | None:
    """Seconds to wait before trying a throttled start again; None when the answer was
    not a throttle (429, or 503 with Retry-After: Resource Manager did not accept it)."""
    asked = retry_after_seconds(retry_after, now)
    if status == 429:
        return DEFAULT_THROTTLE_WAIT_SECONDS if asked is None else asked
    if status == 503 and asked is not None:
        return asked
    return None


def conflict_is_ambiguous(attempt: int) -> bool:
    """Whether a 409 (another operation runs on the service) to the ``attempt``-th try of
    a start leaves it unconfirmed. On the first try the operation is someone else's:
    nothing of ours was sent before. After a retried try it may be our own: APIM can take
    a start and still answer 503 with Retry-After (or 429), and the backup it took is then
    the operation that runs. Deleting our rows would lose it; evidence settles it."""
    return attempt > 1


def may_try_again(attempt: int, waited: float, wait: float) -> bool:
    """Whether a throttled start gets another try: tries and waiting both have a budget."""
    return attempt < START_TRIES and waited + wait <= START_RETRY_BUDGET_SECONDS


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from ``now``: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def poll_retry_after(value: str | None) -> int | None:
    """Retry-After on a status answer, as whole seconds (at least 1) for the caller's
    next poll; None when absent or not a number."""
    try:
        return max(1, int(value)) if value else None
    except ValueError:
        return None


def async_operation_state(text: str) -> PollResult | None:
    """An Azure-AsyncOperation status body (``{"status": ...}``); None for a resource body."""
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        return None
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(status, str):
        return None
    if status.lower() == "succeeded":
        return PollResult(PollState.SUCCEEDED)
    if status.lower() in ("failed", "canceled", "cancelled"):
        return PollResult(PollState.FAILED, error=arm_error_message(text, 200))
    return PollResult(PollState.RUNNING)


# Permission the function's identity needs to poll a backup or restore (Resource Manager
# authorizes GET {service}/operationresults/{id} as this action).
POLL_ACTION = "Microsoft.ApiManagement/service/operationresults/read"
_URL_QUERY = re.compile(r"\?[^\s'\"]*")
MAX_REFUSAL_LENGTH = 1000  # an AuthorizationFailed message with its scope is ~400


def refusal(response_text: str, status: int) -> str:
    """``403 AuthorizationFailed: <message>``: the refusal's status, ARM code and message,
    on one line, without any URL query (a query may carry a signature) and bounded."""
    try:
        body = json.loads(response_text) if response_text else {}
        error = body.get("error") or {}
        code, message = error.get("code"), error.get("message")
    except (ValueError, AttributeError):
        code = message = None
    text = " ".join(_URL_QUERY.sub("", str(message or "no error message")).split())
    said = f"{status} {code or 'no error code'}: {text}"
    if len(said) > MAX_REFUSAL_LENGTH:
        said = said[: MAX_REFUSAL_LENGTH - 3] + "..."
    return said


def refusal_advice(refused: str, status: int, service: ServiceId) -> str:
    """What an operator should check about a refused status request."""
    if status == 401:
        check = "check that the function's identity can get a token for Resource Manager"
    else:
        check = f"check that the function's identity holds {POLL_ACTION} on {service.name}"
    return f"Resource Manager refused the status request ({refused}): {check}"
