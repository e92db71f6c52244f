#!/usr/bin/env python3
"""The backup service's client: the Azure Automation runbook and a pipeline CLI, one file.

Python 3.10 or later, standard library only. Azure Automation imports a runbook as a
single file, so everything the runbook needs is in here, and pipelines run the same
file (``python runbooks/restore_apim.py ...``): one copy of the HTTP code.

It starts a backup or a restore (``POST /api/backups``, ``POST /api/restores``), then
follows the status URL, waiting as long as each ``Retry-After`` asks, until the
operation has ended, and prints the result (for a restore, the settings ``drift``).

Runbook (positional parameters, as Automation passes them; raises to fail the job):

    restore_apim.py <backupName> [target] [functionUrl] [dryrun]

    1. backup name (``<service>-YYYYMMDDTHHMMSSZ.apimbackup``)   required
    2. target service (name or resource id)   optional; "" or "-" for the backup's own
    3. function app URL   optional when the variable ApimBackupFunctionUrl is set
       ("dryrun" here is taken as parameter 4)
    4. "dryrun" to run the checks only   optional

    Automation variables (encrypted for the keys), or environment variables of the same
    name elsewhere:
    ApimBackupFunctionUrl     the function app URL, when not passed as parameter 3
    ApimBackupAuth            ``functionKey`` (default) or ``entra``
    ApimBackupRestoreKey      functionKey: the start_restore function's key
    ApimBackupStatusKey       functionKey: the get_operation function's key (defaults to
                              the restore key, which works when that is a host key)
    ApimBackupAppIdUri        entra: the app's application ID URI (the token's resource)
    ApimBackupIdentityClientId  entra, optional: client id of a user-assigned identity
    ApimBackupPollCapSeconds  the longest wait between two polls (default 300)
    ApimBackupTimeoutMinutes  give up after this long (default 170: the sandbox stops
                              a job after 3 hours)

Pipeline CLI (keys and tokens only from the environment, never on the command line):

    restore_apim.py backup  [--service NAME] [--wait]
    restore_apim.py restore --backup NAME [--target NAME] [--dry-run] [--wait]
    restore_apim.py status  OPERATION_ID [--wait]
    restore_apim.py doctor  [--operation OPERATION_ID]   read-only: health answers, a call
        without a key or token (and, with entra, one with a forged principal header) gets
        401, an earlier operation's status URL is on the app's own host; 1 on a FAIL

    APIM_BACKUP_URL (or --url), APIM_BACKUP_AUTH (or --auth: functionKey | entra);
    functionKey: APIM_BACKUP_KEY (the key of the function called), APIM_BACKUP_STATUS_KEY
    (get_operation's key; defaults to APIM_BACKUP_KEY); entra: APIM_BACKUP_TOKEN (a
    bearer token, e.g. from ``az account get-access-token``), or else the managed
    identity endpoint with APIM_BACKUP_RESOURCE (or --resource).

    Progress goes to stderr, the final answer (JSON) to stdout. Exit codes:
    0 succeeded (or started, without --wait; or a dry run whose checks all passed),
    1 the operation ran and failed, 2 bad usage or configuration (nothing was sent),
    3 refused (the start was answered with an error; nothing started), 4 outcome unknown
    (the app could not be reached, or the status could not be followed to the end:
    the operation may still be running).

Safety rules: the function URL must be https (http only to a loopback address, where
``func start`` serves and nothing leaves the machine); the status URL must be on the
function URL's own scheme, host and port, and is rebuilt from that URL rather than
followed as given; redirects are never followed (a redirect would carry the key or the
token to wherever it points). Keys and tokens are never printed.

Managed identity (``entra``): the token comes from ``IDENTITY_ENDPOINT`` with the
``X-IDENTITY-HEADER: $IDENTITY_HEADER`` header (api-version 2019-08-01), which Azure
Automation (and App Service) set for the account's managed identity, and is sent as
``Authorization: Bearer``; no function key is needed.
"""

from __future__ import annotations

import argparse
import email.utils
import ipaddress
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from email.message import Message
from typing import IO, Any

USER_AGENT = "apim-backup-client/2"
REQUEST_TIMEOUT = 60
# Answers worth asking again while following an operation: the function app restarting,
# scaling or throttling says nothing about the operation itself.
TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
IDENTITY_API_VERSION = "2019-08-01"
TOKEN_REFRESH_MARGIN = 300  # seconds before expiry that a managed-identity token is renewed
_OPERATION_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
# Characters no URL we send a key to may hold: whitespace, controls, backslashes (raw
# or encoded): parsers disagree about where such a URL goes.
_UNSAFE_URL = re.compile(r"[\s\x00-\x1f\x7f\\]|%5c", re.IGNORECASE)
Log = Callable[[str], None]


class ClientError(RuntimeError):
    """The request did not end in success; the message says why, ``exit_code`` how."""

    exit_code = 4


class ConfigurationError(ClientError):
    """Bad usage or configuration: nothing was sent."""

    exit_code = 2


class Refused(ClientError):
    """The start was answered with an error: nothing started."""

    exit_code = 3


class OperationFailed(ClientError):
    """The operation ran and ended Failed."""

    exit_code = 1


# The runbook's name for any failure, kept for callers that catch it.
RestoreFailed = ClientError


# -- settings ------------------------------------------------------------------------------


def setting(name: str, default: str | None = None) -> str | None:
    """An Automation variable when running in Automation, else an environment variable."""
    try:
        import automationassets  # only exists inside Azure Automation

        value = automationassets.get_automation_variable(name)
        if value:
            return str(value)
    except ImportError:
        pass
    except Exception as exc:  # an unset variable raises there; fall through to defaults
        print(f"Automation variable {name} not read ({type(exc).__name__})")
    return os.environ.get(name, default)


def _number(raw: str | None, name: str, default: float) -> float:
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw[:40]!r}") from None
    if value < 0:
        raise ConfigurationError(f"{name} must not be negative")
    return value


# -- URL rules -----------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(parts: urllib.parse.SplitResult) -> tuple[str, str, int]:
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def check_base_url(url: str) -> str:
    """The function app's URL, checked: https (http only on loopback), no user info,
    query or fragment. Without a trailing slash."""
    url = url.strip()
    if _UNSAFE_URL.search(url):
        raise ConfigurationError("The function app URL holds whitespace, a backslash or controls")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (a malformed port raises here)
    except ValueError:
        raise ConfigurationError("The function app URL is not a valid URL") from None
    if not parts.hostname or parts.scheme.lower() not in ("https", "http"):
        raise ConfigurationError(
            "The function app URL must be an https:// URL, e.g. https://<app>.azurewebsites.net"
        )
    if parts.scheme.lower() == "http" and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"The function app URL must use https: http is allowed only for a loopback "
            f"address (local testing), not for {parts.hostname}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("The function app URL must not hold user information")
    if parts.query or parts.fragment:
        raise ConfigurationError("The function app URL must not hold a query or a fragment")
    return url.rstrip("/")


def status_url_for(base_url: str, given: str) -> str:
    """The URL to poll for an operation, from the Location (or ``statusUrl``) the app
    answered: it must be ``<base>/api/operations/<id>`` on the base URL's own scheme,
    host and port. The URL returned is rebuilt from ``base_url``, never taken as given."""
    if not given or _UNSAFE_URL.search(given):
        raise ClientError(f"Refusing the status URL {given[:200]!r}: empty or unsafe characters")
    absolute = urllib.parse.urljoin(base_url + "/", given)
    try:
        parts = urllib.parse.urlsplit(absolute)
        base = urllib.parse.urlsplit(base_url)
        same_origin = _origin(parts) == _origin(base)
    except ValueError:
        raise ClientError(f"Refusing the status URL {given[:200]!r}: not a valid URL") from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ClientError("Refusing the status URL: it holds user information")
    if not same_origin:
        scheme, host, port = _origin(parts)
        raise ClientError(
            f"Refusing the status URL on {scheme}://{host}:{port}: not the function app's own "
            "host, and the key or token would go there"
        )
    prefix = base.path.rstrip("/") + "/api/operations/"
    operation_id = parts.path[len(prefix) :] if parts.path.startswith(prefix) else ""
    if not _OPERATION_ID.fullmatch(operation_id) or parts.query or parts.fragment:
        raise ClientError(f"Refusing the status URL path {parts.path[:200]!r}: not an operation")
    return f"{base_url}/api/operations/{operation_id}"


# -- HTTP ----------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: it would carry the key or the token to another URL."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None  # urllib then raises HTTPError with the 3xx, answered to the caller


_OPENER = urllib.request.build_opener(_NoRedirect)


def http_call(
    method: str,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """(status, lower-cased headers, JSON body); status 0 when nothing was answered."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    for name, value in headers.items():
        request.add_header(name, value)
    request.add_header("User-Agent", USER_AGENT)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(request, timeout=REQUEST_TIMEOUT) as response:
            status, answered, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, answered, raw = error.code, error.headers, error.read()
    except (urllib.error.URLError, OSError) as error:  # unreachable, reset, timed out
        reason = getattr(error, "reason", error)
        message = f"{type(reason).__name__}: {reason}"
        return 0, {}, {"error": {"code": "Unreachable", "message": message}}
    lowered = {k.lower(): v for k, v in answered.items()} if answered else {}
    try:
        payload = json.loads(raw) if raw else {}
    except ValueError:
        payload = {"raw": raw[:500].decode("utf-8", "replace")}
    return status, lowered, payload


def describe_error(status: int, payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code', 'Error')} (HTTP {status}): {error.get('message', '')}"
    if status == 0:
        return "no answer"
    return f"HTTP {status}: {str(payload)[:500]}"


def retry_after(headers: dict[str, str], cap: float, default: float = 30.0) -> float:
    """Seconds to wait as ``Retry-After`` asks (seconds or an HTTP date), at most ``cap``."""
    raw = headers.get("retry-after", "").strip()
    wait = default
    if raw:
        try:
            wait = float(raw)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(raw)
                wait = when.timestamp() - time.time()
            except (TypeError, ValueError):
                wait = default
    return min(max(wait, 0.0), cap)


# -- credentials ---------------------------------------------------------------------------


def managed_identity_token(
    endpoint: str, identity_header: str, resource: str, client_id: str | None = None
) -> tuple[str, float]:
    """(token, expires at, epoch seconds) from the managed identity endpoint
    (``IDENTITY_ENDPOINT``), as Azure Automation and App Service offer it."""
    query = {"resource": resource, "api-version": IDENTITY_API_VERSION}
    if client_id:
        query["client_id"] = client_id
    url = f"{endpoint}{'&' if '?' in endpoint else '?'}{urllib.parse.urlencode(query)}"
    status, _headers, payload = http_call("GET", url, {"X-IDENTITY-HEADER": identity_header})
    token = payload.get("access_token") if isinstance(payload, dict) else None
    if status != 200 or not isinstance(token, str) or not token:
        detail = ""
        if isinstance(payload, dict):
            code = payload.get("error")
            detail = str(payload.get("error_description") or payload.get("message") or "")
            detail = f": {code if isinstance(code, str) else ''} {detail}".rstrip()[:300]
        raise ConfigurationError(
            f"The managed identity endpoint gave no token for {resource} (HTTP {status}){detail}"
        )
    try:
        expires_on = float(payload.get("expires_on") or 0)
    except (TypeError, ValueError):
        expires_on = 0.0
    return token, expires_on or time.time() + 3600


class KeyAuth:
    """Function keys: the started function's key, and get_operation's for the polls."""

    def __init__(self, start_key: str, status_key: str) -> None:
        self._start, self._status = start_key, status_key

    def headers(self, *, for_status: bool) -> dict[str, str]:
        return {"x-functions-key": self._status if for_status else self._start}

    def refused_hint(self) -> str:
        return "the key for GET /api/operations (ApimBackupStatusKey / APIM_BACKUP_STATUS_KEY)"


class BearerAuth:
    """An Entra ID token (App Service authentication in front of the app)."""

    def __init__(self, fetch: Callable[[], tuple[str, float]]) -> None:
        self._fetch = fetch
        self._token = ""
        self._expires = 0.0

    def headers(self, *, for_status: bool) -> dict[str, str]:
        if time.time() > self._expires - TOKEN_REFRESH_MARGIN:
            self._token, self._expires = self._fetch()
        return {"Authorization": f"Bearer {self._token}"}

    def refused_hint(self) -> str:
        return "the token's audience and app roles (ApimBackup.Restore for restores)"


Auth = KeyAuth | BearerAuth


def entra_auth(resource: str | None, client_id: str | None, static_token: str | None) -> BearerAuth:
    if static_token:
        return BearerAuth(lambda: (static_token, float("inf")))
    endpoint, header = os.environ.get("IDENTITY_ENDPOINT"), os.environ.get("IDENTITY_HEADER")
    if not endpoint or not header:
        raise ConfigurationError(
            "entra: no managed identity here (IDENTITY_ENDPOINT and IDENTITY_HEADER are not "
            "set); give the runbook's Automation account a managed identity, or pass a token"
        )
    if not resource:
        raise ConfigurationError(
            "entra: the app's application ID URI is missing (ApimBackupAppIdUri, "
            "APIM_BACKUP_RESOURCE or --resource)"
        )
    return BearerAuth(lambda: managed_identity_token(endpoint, header, resource, client_id))


# -- the client ----------------------------------------------------------------------------


class Client:
    """Start an operation on the backup service and follow it to its end."""

    def __init__(
        self,
        base_url: str,
        auth: Auth,
        *,
        log: Log = print,
        poll_cap: float = 300.0,
        timeout_minutes: float = 170.0,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.auth = auth
        self.log = log
        self.poll_cap = poll_cap
        self.timeout_minutes = timeout_minutes

    def _call(
        self, method: str, url: str, body: dict[str, Any] | None = None, *, for_status: bool
    ) -> tuple[int, dict[str, str], Any]:
        status, headers, payload = http_call(
            method, url, self.auth.headers(for_status=for_status), body
        )
        if 300 <= status < 400:
            where = urllib.parse.urlsplit(headers.get("location", ""))
            target = f"{where.scheme}://{where.hostname}" if where.hostname else "elsewhere"
            payload = {
                "error": {
                    "code": "RedirectRefused",
                    "message": f"the app answered a redirect to {target}; not followed, so the "
                    "key or token stays with the function app (check the function app URL)",
                }
            }
        return status, headers, payload

    def start(self, route: str, body: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
        """POST the start; (status URL, the 202's headers, its body). Refused unless 202."""
        url = f"{self.base_url}/api/{route}"
        status, headers, payload = self._call("POST", url, body, for_status=False)
        if status == 0:
            raise ClientError(
                f"The function app could not be reached: {describe_error(0, payload)}"
            )
        if status != 202 or not isinstance(payload, dict):
            raise Refused(f"Refused: {describe_error(status, payload)}")
        given = headers.get("location") or str(payload.get("statusUrl") or "")
        try:
            status_url = status_url_for(self.base_url, given)
        except ClientError as exc:
            raise ClientError(
                f"Operation {payload.get('operationId')} was started, but it is not followed: {exc}"
            ) from None
        return status_url, headers, payload

    def status_url(self, operation_id: str) -> str:
        return status_url_for(self.base_url, f"/api/operations/{operation_id}")

    def follow(
        self, status_url: str, headers: dict[str, str] | None = None, *, what: str = "operation"
    ) -> dict[str, Any]:
        """Poll until the operation ends; its final body when it Succeeded."""
        headers = headers if headers is not None else {"retry-after": "0"}
        deadline = time.monotonic() + self.timeout_minutes * 60
        while True:
            wait = retry_after(headers, self.poll_cap)
            if time.monotonic() + wait > deadline:
                raise ClientError(
                    f"Gave up after {self.timeout_minutes:g} minutes; the {what} may still be "
                    f"running: {status_url}"
                )
            time.sleep(wait)
            status, headers, payload = self._call("GET", status_url, for_status=True)
            if status == 0 or status in TRANSIENT:
                self.log(
                    f"  status not available ({describe_error(status, payload)}); asking again"
                )
                continue
            if status in (401, 403):
                raise ClientError(
                    f"The {what} was started, but the status route refused the caller "
                    f"(HTTP {status}): check {self.auth.refused_hint()}. Follow it at {status_url}"
                )
            if status == 202 and isinstance(payload, dict):
                self.log(f"  still running ({payload.get('status', 'Running')})")
                continue
            if status != 200 or not isinstance(payload, dict):
                raise ClientError(f"Status request failed: {describe_error(status, payload)}")
            if payload.get("status") == "Succeeded":
                return payload
            raise OperationFailed(
                f"The {what} ended {payload.get('status', 'without success')}: "
                f"{describe_error(200, payload)}"
            )

    # -- the three jobs ------------------------------------------------------------------

    def backup(self, service: str | None, *, wait: bool) -> dict[str, Any]:
        body = {"service": service} if service else {}
        self.log(f"Requesting a backup of {service or 'the configured service'}")
        status_url, headers, started = self.start("backups", body)
        self.log(
            f"Backup started: operation {started.get('operationId')}, {started.get('backupName')}"
        )
        if not wait:
            return started
        done = self.follow(status_url, headers, what="backup")
        self.log(f"Backup {done.get('backupName')} of {done.get('service')} succeeded")
        return done

    def restore(
        self, backup_name: str, target: str | None, *, dry_run: bool = False, wait: bool = True
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"backupName": backup_name}
        if target:
            body["targetService"] = target
        self.log(f"Requesting restore of {backup_name} into {target or 'its own service'}")
        if dry_run:
            return self._dry_run({**body, "dryRun": True})
        status_url, headers, started = self.start("restores", body)
        self.log(
            f"Restore started: operation {started.get('operationId')} into {started.get('service')}"
        )
        if not wait:
            return started
        done = self.follow(status_url, headers, what="restore")
        self.log(f"Restore of {backup_name} into {done.get('service')} succeeded")
        for line in drift_lines(done):
            self.log(line)
        return done

    def _dry_run(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/api/restores"
        status, _headers, payload = self._call("POST", url, body, for_status=False)
        if status == 0:
            raise ClientError(
                f"The function app could not be reached: {describe_error(0, payload)}"
            )
        if status != 200 or not isinstance(payload, dict):
            raise Refused(f"Dry run refused: {describe_error(status, payload)}")
        for check in payload.get("checks", []):
            if isinstance(check, dict):
                code = f" {check['code']}:" if check.get("code") else ""
                why = check.get("message") or check.get("reason") or ""
                self.log(f"  {check.get('check')}: {check.get('result')}{code} {why}".rstrip())
        if not payload.get("wouldStart"):
            raise Refused("Dry run: the restore would be refused (see the checks above)")
        self.log("Dry run: every check passed")
        return payload

    def status(self, operation_id: str, *, wait: bool) -> dict[str, Any]:
        if not _OPERATION_ID.fullmatch(operation_id):
            raise ConfigurationError(f"Not an operation id: {operation_id[:80]!r}")
        url = self.status_url(operation_id)
        if wait:
            done = self.follow(url)
            for line in drift_lines(done):
                self.log(line)
            return done
        status, _headers, payload = self._call("GET", url, for_status=True)
        if status not in (200, 202) or not isinstance(payload, dict):
            raise ClientError(f"Status request failed: {describe_error(status, payload)}")
        if payload.get("status") == "Failed":
            raise OperationFailed(f"The operation ended Failed: {describe_error(200, payload)}")
        return payload


# -- doctor: is a deployed app reachable, and closed to callers without credentials? ----

FORGED_PRINCIPAL = (  # {"claims":[{"typ":"roles","val":"ApimBackup.Restore"}]}, base64
    "eyJjbGFpbXMiOlt7InR5cCI6InJvbGVzIiwidmFsIjoiQXBpbUJhY2t1cC5SZXN0b3JlIn1dfQ=="
)


def _line(level: str, check: str, what: str, fix: str = "") -> str:
    return f"{level} {check}: {what}" + (f" — {fix}" if fix else "")


def doctor(client: Client, entra: bool, operation_id: str | None) -> list[str]:
    """Read-only checks of a deployed app, one line each (OK, WARN or FAIL)."""
    health = f"{client.base_url}/api/health"
    lines = [_health_line(*client._call("GET", health, for_status=True))]
    status, _h, _p = http_call("GET", health, {})
    lines.append(_open_line("a call without a key or token", status, entra))
    if entra:
        status, _h, _p = http_call("GET", health, {"X-MS-CLIENT-PRINCIPAL": FORGED_PRINCIPAL})
        lines.append(_open_line("a forged principal header without a token", status, entra))
    lines.append(_status_url_line(client, operation_id))
    return lines


def _health_line(status: int, _headers: dict[str, str], payload: Any) -> str:
    check = "health"
    if status == 200:
        return _line("OK", check, "GET /api/health answers 200 Healthy")
    if status == 503 and isinstance(payload, dict) and payload.get("status") == "Unhealthy":
        reasons = sorted(
            {
                f"{s.get('service')}: {s.get('reason')}"
                for s in payload.get("services") or []
                if isinstance(s, dict) and not s.get("healthy")
            }
        )
        return _line(
            "WARN",
            check,
            "the app answers, Unhealthy: " + ("; ".join(reasons) or "stuck operations"),
            "normal before the first scheduled backups; else see docs/http-api.md, health",
        )
    if status in (401, 403):
        return _line(
            "FAIL",
            check,
            f"HTTP {status}: the app refused this client's credentials",
            "check APIM_BACKUP_STATUS_KEY (or APIM_BACKUP_KEY): a host key, or a key valid for "
            "health and get_operation; with entra, the token's audience",
        )
    return _line(
        "FAIL",
        check,
        describe_error(status, payload),
        "check the URL; the app's settings (a 500 ConfigurationError names the setting)",
    )


def _open_line(check: str, status: int, entra: bool) -> str:
    if status in (401, 403):
        return _line("OK", check, f"refused with {status}")
    if status == 0:
        return _line("WARN", check, "not checked: the app did not answer")
    if 300 <= status < 400:
        return _line(
            "WARN",
            check,
            f"answered a redirect ({status}), not 401",
            "set the app's authentication to answer 401 to unauthenticated calls",
        )
    fix = (
        "the platform does not stand in front: set API_AUTH back to functionKey until "
        "App Service authentication answers 401 (infra/README.md, Callers without keys)"
        if entra
        else "the routes must be authLevel function: check API_AUTH and the deployed code"
    )
    return _line("FAIL", check, f"answered {status}: anyone can call the API", fix)


def _status_url_line(client: Client, operation_id: str | None) -> str:
    check = "status URL"
    if not operation_id:
        return _line(
            "WARN",
            check,
            "not checked: no operation to look at",
            "pass --operation <id> of any earlier backup or restore",
        )
    if not _OPERATION_ID.match(operation_id):
        return _line("FAIL", check, f"not an operation id: {operation_id[:80]!r}")
    status, headers, payload = client._call("GET", client.status_url(operation_id), for_status=True)
    if status not in (200, 202) or not isinstance(payload, dict):
        return _line(
            "FAIL", check, f"GET /api/operations/{operation_id}: " + describe_error(status, payload)
        )
    given = headers.get("location") or str(payload.get("statusUrl") or "")
    try:
        status_url_for(client.base_url, given)
    except ClientError as exc:
        return _line(
            "FAIL", check, str(exc), "the app must answer status URLs on the host it was called on"
        )
    return _line("OK", check, "on the function app's own host")


def _shown(value: Any) -> str:
    if value is None:
        return "(not set)"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def drift_lines(final: dict[str, Any]) -> list[str]:
    """A finished restore's ``drift`` (settings the backup does not carry that differ
    between the backup's manifest and the target), as lines; none without a list."""
    drift = final.get("drift")
    if not isinstance(drift, list):
        return []
    if not drift:
        return ["Drift: none; the target's settings match the backup's manifest"]
    lines = [f"Drift: {len(drift)} setting(s) differ from the backup's manifest:"]
    for item in drift:
        if isinstance(item, dict):
            lines.append(
                f"  {_shown(item.get('setting'))}: source {_shown(item.get('source'))}, "
                f"target {_shown(item.get('target'))}; {_shown(item.get('action'))}"
            )
    return lines


# -- the runbook ---------------------------------------------------------------------------


def _dry_run_flag(value: str) -> bool:
    return value.strip().lower() in ("dryrun", "dry-run", "true")


def runbook(argv: list[str]) -> dict[str, Any]:
    """Automation's entry point: positional parameters, Automation variables."""
    if not argv or not argv[0].strip():
        raise ConfigurationError("Parameter 1, the backup name, is required")
    backup_name = argv[0].strip()
    target = argv[1].strip() if len(argv) > 1 and argv[1].strip() not in ("", "-") else None
    third = argv[2].strip() if len(argv) > 2 else ""
    dry_run = _dry_run_flag(third) or (len(argv) > 3 and _dry_run_flag(argv[3]))
    base_url = third if third and not _dry_run_flag(third) else setting("ApimBackupFunctionUrl")
    if not base_url:
        raise ConfigurationError(
            "The function app URL is missing: parameter 3 or variable ApimBackupFunctionUrl"
        )
    mode = (setting("ApimBackupAuth") or "functionKey").strip()
    auth: Auth
    if mode.lower() == "entra":
        auth = entra_auth(
            setting("ApimBackupAppIdUri"), setting("ApimBackupIdentityClientId"), None
        )
    elif mode.lower() == "functionkey":
        restore_key = setting("ApimBackupRestoreKey")
        if not restore_key:
            raise ConfigurationError(
                "The restore key is missing: set the variable ApimBackupRestoreKey "
                "(or ApimBackupAuth=entra to use the managed identity)"
            )
        auth = KeyAuth(restore_key, setting("ApimBackupStatusKey") or restore_key)
    else:
        raise ConfigurationError(f"ApimBackupAuth must be functionKey or entra, not {mode!r}")
    client = Client(
        base_url,
        auth,
        log=print,
        poll_cap=_number(setting("ApimBackupPollCapSeconds"), "ApimBackupPollCapSeconds", 300),
        timeout_minutes=_number(
            setting("ApimBackupTimeoutMinutes"), "ApimBackupTimeoutMinutes", 170
        ),
    )
    return client.restore(backup_name, target, dry_run=dry_run)


# -- the pipeline CLI ----------------------------------------------------------------------

COMMANDS = ("backup", "restore", "status", "doctor")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="restore_apim.py",
        description="Start a backup or restore on the APIM backup service and follow it.",
        epilog="Keys and tokens come from the environment only; see the file's docstring.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("APIM_BACKUP_URL"), help="function app URL")
    common.add_argument(
        "--auth",
        choices=("functionKey", "entra"),
        default=os.environ.get("APIM_BACKUP_AUTH") or "functionKey",
    )
    common.add_argument(
        "--resource",
        default=os.environ.get("APIM_BACKUP_RESOURCE"),
        help="entra: the app's application ID URI",
    )
    common.add_argument(
        "--identity-client-id",
        default=os.environ.get("APIM_BACKUP_IDENTITY_CLIENT_ID"),
        help="entra: a user-assigned identity's client id",
    )
    common.add_argument("--timeout-minutes", type=float, default=120.0)
    common.add_argument("--poll-cap", type=float, default=300.0, help="longest wait between polls")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("backup", parents=[common], help="start a backup")
    p.add_argument("--service", help="service name or resource id (optional with one service)")
    p.add_argument("--wait", action="store_true", help="follow it to the end")
    p = sub.add_parser("restore", parents=[common], help="restore a backup")
    p.add_argument("--backup", required=True, help="the backup's name")
    p.add_argument("--target", help="target service (default: the backup's own)")
    p.add_argument("--dry-run", action="store_true", help="run the checks only")
    p.add_argument("--wait", action="store_true", help="follow it to the end")
    p = sub.add_parser("status", parents=[common], help="an operation's state")
    p.add_argument("operation_id")
    p.add_argument("--wait", action="store_true", help="follow it to the end")
    p = sub.add_parser(
        "doctor", parents=[common], help="check a deployed app (read-only); 1 on a FAIL"
    )
    p.add_argument("--operation", help="an earlier operation's id: checks its status URL")
    return parser


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cli(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if not args.url:
            raise ConfigurationError("The function app URL is missing: --url or APIM_BACKUP_URL")
        check_base_url(args.url)  # before any credential is looked for, let alone fetched
        auth: Auth
        if args.auth == "entra":
            token = os.environ.get("APIM_BACKUP_TOKEN")
            auth = entra_auth(args.resource, args.identity_client_id, token)
        else:
            key = os.environ.get("APIM_BACKUP_KEY")
            if not key:
                raise ConfigurationError("The function key is missing: set APIM_BACKUP_KEY")
            auth = KeyAuth(key, os.environ.get("APIM_BACKUP_STATUS_KEY") or key)
        client = Client(
            args.url,
            auth,
            log=_stderr,
            poll_cap=args.poll_cap,
            timeout_minutes=args.timeout_minutes,
        )
        if args.command == "doctor":
            lines = doctor(client, args.auth == "entra", args.operation)
            print("\n".join(lines))
            return 1 if any(line.startswith("FAIL ") for line in lines) else 0
        if args.command == "backup":
            result = client.backup(args.service, wait=args.wait)
        elif args.command == "restore":
            result = client.restore(args.backup, args.target, dry_run=args.dry_run, wait=args.wait)
        else:
            result = client.status(args.operation_id, wait=args.wait)
    except ClientError as failure:
        _stderr(f"FAILED: {failure}")
        return failure.exit_code
    print(json.dumps(result, indent=2))
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] in (*COMMANDS, "-h", "--help"):
        return cli(argv)
    try:
        runbook(argv)
    except ClientError as failure:
        print(f"FAILED: {failure}")  # the Output stream, where an operator looks first
        raise  # an uncaught exception is what marks an Automation job Failed (documented)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
