"""The whole local stack: Azurite plus the APIM management emulator, started and stopped together.

    with LocalStack.start() as stack:
        env = stack.product_env()          # what the product needs to run against it
        stack.control.advance_clock(60)    # drive the emulator from a test

Only the processes started here are stopped here, by their own pids.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.azurite import (
    DEV_ACCOUNT,
    DEV_KEY,
    ROOT,
    Azurite,
    free_port,
    stop_process,
    wait_for_port,
)

DEFAULT_SEED = ROOT / "emulator" / "seed.json"
# The services the product backs up, and where it may restore to, in the default seed.
BACKUP_SERVICES = ("contoso-apim", "fabrikam-apim")
STANDBY_SERVICES = ("contoso-standby", "fabrikam-standby")


class EmulatorControl:
    """The emulator's ``/_emulator/`` test controls, over HTTPS trusting the stack's CA."""

    def __init__(self, base_url: str, ca_bundle: str) -> None:
        self.base_url = base_url
        self._tls = ssl.create_default_context(cafile=ca_bundle)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - our own https URL
            f"{self.base_url}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self._tls, timeout=30) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            raise RuntimeError(
                f"emulator control {method} {path}: {err.code} {err.read()!r}"
            ) from err

    def reset(self, seed: dict[str, Any] | None = None) -> None:
        """Reseed (the default seed, or this one), forget operations and faults, reset the clock."""
        self._call("POST", "reset", seed or {})

    def now(self) -> str:
        return str(self._call("GET", "clock")["now"])

    def advance_clock(self, seconds: float) -> str:
        """Move the emulator's clock forward; returns the new time (ISO 8601)."""
        return str(self._call("POST", "clock/advance", {"seconds": seconds})["now"])

    def set_clock(self, moment: str) -> str:
        """Stop the emulator's clock at ``moment`` (ISO 8601 with offset); from then on it
        moves only by ``advance_clock`` (until ``reset``). Returns the new time."""
        return str(self._call("POST", "clock/set", {"now": moment})["now"])

    def set_duration(self, seconds: float) -> None:
        """How long each new operation runs on the emulator's clock."""
        self._call("POST", "settings", {"duration": seconds})

    def set_retry_after(self, seconds: int) -> None:
        """The Retry-After sent with each 202 (0 lets the client's polling interval rule)."""
        self._call("POST", "settings", {"retryAfter": seconds})

    def set_latency(self, seconds: float) -> None:
        """How long each Resource Manager request takes to answer (0: at once)."""
        self._call("POST", "settings", {"latency": seconds})

    def set_state_during_backup(self, state: str) -> None:
        """The provisioningState a service shows while a backup runs: "Updating" (the
        default) or "Succeeded" (APIM is not documented to show Updating)."""
        self._call("POST", "settings", {"stateDuringBackup": state})

    def fail_next_operation(self, service: str, code: str, message: str) -> None:
        """The next backup or restore of this service ends Failed with this error."""
        self._call("POST", f"services/{service}/fail-next", {"code": code, "message": message})

    def inject_fault(
        self,
        *,
        method: str | None = None,
        path_contains: str = "",
        status: int = 503,
        retry_after: int | str | None = None,
        times: int = 1,
        action: str = "respond",
        accept: bool = False,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching ARM requests with ``status`` (or drop them).
        With ``accept`` the request is carried out first and only its answer is replaced:
        "the operation started, then the connection dropped (or Resource Manager said 500)".
        ``code`` and ``message`` set the ARM error body (e.g. a 403 AuthorizationFailed).
        ``retry_after``: seconds, or an HTTP date (sent as given)."""
        fault: dict[str, object] = {
            "accept": accept,
            "code": code,
            "message": message,
            "method": method,
            "pathContains": path_contains,
            "status": status,
            "retryAfter": retry_after,
            "times": times,
            "action": action,
        }
        self._call("POST", "faults", fault)

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def requests(self) -> list[dict[str, Any]]:
        """The ARM requests received: method, path, query, body (keys redacted), time, status."""
        return list(self._call("GET", "requests")["value"])

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def operations(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "operations")["value"])

    def operations_since(self, since: str) -> list[dict[str, Any]]:
        """The operations still running, or started or ended at or after ``since``."""
        return list(self._call("POST", "operations/changed", {"since": since})["value"])

    def service(self, name: str) -> dict[str, Any]:
        """Everything the emulator holds about a service, with its provisioning state."""
        return dict(self._call("GET", f"services/{name}"))

    def service_config(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"services/{name}/configuration"))

    def patch_service(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Change sku (merged), identity, workspaceLinks, configuration, properties, tags."""
        return dict(self._call("PATCH", f"services/{name}", patch))

    def role_assignments(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "role-assignments")["value"])

    def set_role_assignments(self, assignments: list[dict[str, Any]]) -> None:
        """Replace every role assignment (items of principalId, roleDefinitionId, scope and
        optionally condition). By default each seed identity holds Storage Blob Data
        Contributor on the account."""
        self._call("PUT", "role-assignments", {"value": assignments})

    def storage(self) -> dict[str, Any]:
        """The backup account's control plane as the emulator holds it (id included)."""
        return dict(self._call("GET", "storage"))

    def patch_storage(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Change networkAcls or blobService (merged), publicNetworkAccess, or
        immutabilityPolicies (replaced: container -> {immutabilityPeriodSinceCreationInDays,
        state, allowProtectedAppendWritesAll})."""
        return dict(self._call("PATCH", "storage", patch))

    def subscribe_events(self, url: str | None, cafile: str | None = None) -> dict[str, Any]:
        """Deliver Event Grid events (emulator.events) to ``url`` (None: to nobody)."""
        return dict(self._call("POST", "events/subscriber", {"url": url, "cafile": cafile}))

    def events(self) -> list[dict[str, Any]]:
        """The events published (the last 500): ``event``, ``state``, ``attempts``, ``error``."""
        return list(self._call("GET", "events")["value"])

    def clear_events(self) -> None:
        self._call("DELETE", "events")

    def drain_events(self, timeout: float = 20) -> None:
        """Wait until every published event is delivered (or given up)."""
        self._call("POST", "events/drain", {"timeout": timeout})


@dataclass
class LocalStack:
    azurite: Azurite
    process: subprocess.Popen[bytes]
    port: int
    workdir: tempfile.TemporaryDirectory[str]
    subscription_id: str
    resource_group: str
    storage_account: str = DEV_ACCOUNT
    storage_key: str = DEV_KEY

    @classmethod
    def start(cls, seed: Path = DEFAULT_SEED, timeout: float = 30.0) -> LocalStack:
        seed_doc = json.loads(seed.read_text())
        azurite = Azurite.start()
        workdir = tempfile.TemporaryDirectory(prefix="apim-emulator-")
        try:
            port = free_port()
            process = _start_emulator(port, Path(workdir.name), azurite, seed)
        except BaseException:
            azurite.stop()
            workdir.cleanup()
            raise
        stack = cls(
            azurite=azurite,
            process=process,
            port=port,
            workdir=workdir,
            subscription_id=str(seed_doc["subscriptionId"]),
            resource_group=str(seed_doc["resourceGroup"]),
        )
        try:
            wait_for_port(port, timeout, process)
        except BaseException:
            stack.stop()
            raise
        return stack

    def stop(self) -> None:
        stop_process(self.process)
        self.azurite.stop()
        self.workdir.cleanup()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def arm_endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_bundle(self) -> str:
        return str(Path(self.workdir.name) / "ca" / "ca.pem")

    @property
    def emulator_log(self) -> Path:
        return Path(self.workdir.name) / "emulator.log"

    @property
    def connection_string(self) -> str:
        return self.azurite.connection_string

    @property
    def control(self) -> EmulatorControl:
        return EmulatorControl(self.arm_endpoint, self.ca_bundle)

    def service_id(self, name: str) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ApiManagement/service/{name}"
        )

    def storage_account_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Storage/storageAccounts/{self.storage_account}"
        )

    def product_env(self) -> dict[str, str]:
        """The settings the product needs to run against this stack."""
        return {
            "APIM_SERVICES": ",".join(self.service_id(n) for n in BACKUP_SERVICES),
            "RESTORE_TARGETS": ",".join(
                self.service_id(n) for n in BACKUP_SERVICES + STANDBY_SERVICES
            ),
            "BACKUP_STORAGE_ACCOUNT": self.storage_account,
            "BACKUP_STORAGE": self.connection_string,
            "ARM_ENDPOINT": self.arm_endpoint,
            "ARM_CREDENTIAL": "emulator",
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
        }


def _start_emulator(
    port: int, workdir: Path, azurite: Azurite, seed: Path
) -> subprocess.Popen[bytes]:
    args = [
        sys.executable, "-m", "emulator",
        "--port", str(port),
        "--ca-dir", str(workdir / "ca"),
        "--azurite-blob-endpoint", azurite.blob_endpoint,
        "--storage-account", DEV_ACCOUNT,
        "--storage-key", DEV_KEY,
        "--seed", str(seed),
    ]  # fmt: skip
    with open(workdir / "emulator.log", "wb") as log:
        return subprocess.Popen(
            args,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ),
        )
