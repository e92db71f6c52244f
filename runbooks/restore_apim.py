#!/usr/bin/env python3
"""Azure Automation runbook (Python 3.10, standard library only): restore an APIM backup.

Calls the backup service's ``POST /api/restores``, then follows the status URL, waiting
as long as each ``Retry-After`` asks, until the restore has ended. Prints progress to
the Output stream. Raises (so Automation marks the job Failed) when the restore is
refused, fails, or does not end in time.

Parameters (positional, as Automation passes them):
    1. backup name (``<service>-YYYYMMDDTHHMMSSZ.apimbackup``)   required
    2. target service (name or resource id)   optional; "" or "-" for the backup's own
    3. function app URL (``https://<app>.azurewebsites.net``)   optional if the variable is set
    4. "dryrun" to run the checks only   optional

Automation variables (encrypted for the keys), or environment variables of the same
name elsewhere:
    ApimBackupFunctionUrl   the function app URL, when not passed as parameter 3
    ApimBackupRestoreKey    the restore function's key (x-functions-key)
    ApimBackupStatusKey     a key for GET /api/operations (defaults to the restore key,
                            which works when that is a host key)
    ApimBackupPollCapSeconds  the longest wait between two polls (default 300)
    ApimBackupTimeoutMinutes  give up after this long (default 170: the sandbox stops
                              a job after 3 hours)
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

USER_AGENT = "apim-backup-runbook/1"
REQUEST_TIMEOUT = 60
# Answers worth asking again while following a restore: the function app restarting,
# scaling or throttling says nothing about the restore itself.
TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})


class RestoreFailed(RuntimeError):
    """The restore was refused or failed; the message says why."""


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


def call(
    method: str, url: str, key: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("x-functions-key", key)
    request.add_header("User-Agent", USER_AGENT)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, dict(error.headers), error.read()
    except (urllib.error.URLError, OSError) as error:  # unreachable, reset, timed out
        return 0, {}, {"error": {"code": "Unreachable", "message": str(error)}}
    try:
        payload = json.loads(raw) if raw else {}
    except ValueError:
        payload = {"raw": raw[:500].decode("utf-8", "replace")}
    return status, headers, payload


def describe_error(status: int, payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code', 'Error')} (HTTP {status}): {error.get('message', '')}"
    return f"HTTP {status}: {payload}"


def retry_after(headers: dict[str, str], cap: float) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return min(max(float(value), 0.0), cap)
            except ValueError:
                break
    return min(30.0, cap)


def restore(
    base_url: str,
    backup_name: str,
    target: str | None,
    restore_key: str,
    status_key: str,
    *,
    dry_run: bool = False,
    poll_cap: float = 300.0,
    timeout_minutes: float = 170.0,
) -> dict[str, Any]:
    """Start the restore and follow it to the end; the final status body."""
    body: dict[str, Any] = {"backupName": backup_name}
    if target:
        body["targetService"] = target
    if dry_run:
        body["dryRun"] = True
    start_url = urllib.parse.urljoin(base_url.rstrip("/") + "/", "api/restores")
    print(f"Requesting restore of {backup_name} into {target or 'its own service'}")
    status, headers, payload = call("POST", start_url, restore_key, body)
    if dry_run:
        if status != 200:
            raise RestoreFailed(f"Dry run refused: {describe_error(status, payload)}")
        for check in payload.get("checks", []):
            line = f"  {check.get('check')}: {check.get('result')} {check.get('message') or ''}"
            print(line.rstrip())
        if not payload.get("wouldStart"):
            raise RestoreFailed("Dry run: the restore would be refused (see the checks above)")
        print("Dry run: every check passed")
        return dict(payload)
    if status == 0:
        raise RestoreFailed(f"The function app could not be reached: {describe_error(0, payload)}")
    if status != 202:
        raise RestoreFailed(f"Restore refused: {describe_error(status, payload)}")
    location = next((v for k, v in headers.items() if k.lower() == "location"), None)
    status_url = urllib.parse.urljoin(start_url, location or payload.get("statusUrl", ""))
    print(f"Restore started: operation {payload.get('operationId')} into {payload.get('service')}")

    deadline = time.monotonic() + timeout_minutes * 60
    while True:
        wait = retry_after(headers, poll_cap)
        if time.monotonic() + wait > deadline:
            raise RestoreFailed(
                f"Gave up after {timeout_minutes:g} minutes; the restore may still be running: "
                f"{status_url}"
            )
        time.sleep(wait)
        status, headers, payload = call("GET", status_url, status_key)
        if status == 0 or status in TRANSIENT:
            print(f"  status not available ({describe_error(status, payload)}); asking again")
            continue
        if status in (401, 403):
            raise RestoreFailed(
                f"The restore was started, but the status route refused the key (HTTP {status}): "
                "set ApimBackupStatusKey to the get_operation function's key. Follow it at "
                f"{status_url}"
            )
        if status == 202:
            print(f"  still running ({payload.get('status', 'Running')})")
            continue
        if status != 200:
            raise RestoreFailed(f"Status request failed: {describe_error(status, payload)}")
        if payload.get("status") == "Succeeded":
            print(f"Restore of {backup_name} into {payload.get('service')} succeeded")
            return dict(payload)
        raise RestoreFailed(
            f"Restore {payload.get('status', 'ended')}: {describe_error(200, payload)}"
        )


def main(argv: list[str]) -> dict[str, Any]:
    if not argv or not argv[0].strip():
        raise RestoreFailed("Parameter 1, the backup name, is required")
    backup_name = argv[0].strip()
    target = argv[1].strip() if len(argv) > 1 and argv[1].strip() not in ("", "-") else None
    base_url = (
        argv[2].strip() if len(argv) > 2 and argv[2].strip() else setting("ApimBackupFunctionUrl")
    )
    dry_run = len(argv) > 3 and argv[3].strip().lower() in ("dryrun", "dry-run", "true")
    restore_key = setting("ApimBackupRestoreKey")
    if not base_url:
        raise RestoreFailed(
            "The function app URL is missing: parameter 3 or variable ApimBackupFunctionUrl"
        )
    if not restore_key:
        raise RestoreFailed("The restore key is missing: set the variable ApimBackupRestoreKey")
    status_key = setting("ApimBackupStatusKey") or restore_key
    return restore(
        base_url,
        backup_name,
        target,
        restore_key,
        status_key,
        dry_run=dry_run,
        poll_cap=float(setting("ApimBackupPollCapSeconds", "300") or 300),
        timeout_minutes=float(setting("ApimBackupTimeoutMinutes", "170") or 170),
    )


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except RestoreFailed as failure:
        print(f"FAILED: {failure}")  # the Output stream, where an operator looks first
        raise  # an uncaught exception is what marks an Automation job Failed (documented)
