"""The emulator's state and rules: services, operations, clock, faults, request log.

Every public method takes the one lock, so the HTTP threads see a consistent world.
Operations finish lazily: whenever a request arrives, each operation whose duration has
passed on the emulator's clock does its work (exactly once) before the request is
answered, so a test moves time with ``advance`` instead of sleeping.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from emulator.account import StorageAccount, default_role_assignments, role_assignments_arm
from emulator.children import collection_name, delete_child, get_child, patch_child, put_child
from emulator.events import Publisher, apim_event, arm_event
from emulator.model import (
    BACKUP_TIERS,
    JSON,
    SERVICE_TYPE,
    EmulatorError,
    Service,
    apply_patch,
    service_key,
    services_from_seed,
)
from emulator.storage import BlobStore

BACKUP_VALIDITY = timedelta(days=30)
ACCESS_TYPES = ("AccessKey", "SystemAssignedManagedIdentity", "UserAssignedManagedIdentity")
# Azure's rule for container names: 3-63 of lower-case letters, digits and single dashes.
CONTAINER_NAME = re.compile(r"(?=.{3,63}\Z)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*")
BACKUP_FORMAT = "apim-emulator-backup/1"


@dataclass(frozen=True)
class BackupParams:
    storage_account: str
    container: str
    backup_name: str
    access_type: str
    access_key: str | None
    client_id: str | None

    @classmethod
    def parse(cls, body: Any) -> BackupParams:
        if not isinstance(body, dict):
            raise EmulatorError(
                400, "InvalidRequestContent", "The request body must be a JSON object."
            )
        fields = {}
        for name in ("storageAccount", "containerName", "backupName"):
            value = body.get(name)
            if not isinstance(value, str) or not value:
                raise EmulatorError(400, "InvalidParameters", f"'{name}' is required.")
            fields[name] = value
        access_type = body.get("accessType") or "AccessKey"  # the service's default too
        if access_type not in ACCESS_TYPES:
            raise EmulatorError(
                400,
                "InvalidParameters",
                f"Invalid accessType '{access_type}'; expected one of {ACCESS_TYPES}.",
            )
        if not CONTAINER_NAME.fullmatch(fields["containerName"]):
            raise EmulatorError(
                400, "InvalidParameters", f"Invalid container name '{fields['containerName']}'."
            )
        return cls(
            storage_account=fields["storageAccount"],
            container=fields["containerName"],
            backup_name=fields["backupName"],
            access_type=access_type,
            access_key=body.get("accessKey"),
            client_id=body.get("clientId"),
        )


@dataclass
class Operation:
    id: str
    kind: str  # "backup" or "restore"
    service_key: tuple[str, str, str]
    service_name: str
    service_id: str  # the service's resource id, as its Location URLs spell it
    params: BackupParams
    started_at: datetime
    due_at: datetime
    forced_failure: tuple[str, str] | None
    status: str = "Running"  # then "Succeeded" or "Failed"
    error: JSON | None = None
    result: JSON | None = None  # the service resource when it succeeded
    completed_at: datetime | None = None
    size_bytes: int | None = None  # a backup's blob, as written (the year's record)

    @property
    def running(self) -> bool:
        return self.status == "Running"

    def describe(self) -> JSON:
        return {
            "id": self.id,
            "kind": self.kind,
            "service": self.service_name,
            "status": self.status,
            "startedAt": self.started_at.isoformat(),
            "dueAt": self.due_at.isoformat(),
            "completedAt": self.completed_at.isoformat() if self.completed_at else None,
            "storageAccount": self.params.storage_account,
            "container": self.params.container,
            "backupName": self.params.backup_name,
            "accessType": self.params.access_type,
            "error": copy.deepcopy(self.error),
            "sizeBytes": self.size_bytes,
        }


def _retry_after(value: object) -> int | str | None:
    """A fault's Retry-After: whole seconds, or an HTTP date (a string that is not a number)."""
    if value is None:
        return None
    if isinstance(value, str) and not value.strip().isdigit():
        return value
    return int(str(value))


@dataclass
class Fault:
    method: str | None
    path_contains: str
    action: str  # "respond" or "drop"
    status: int
    retry_after: int | str | None  # seconds, or an HTTP date as given
    times: int
    accept: bool = False  # handle the request first, then answer with the fault
    code: str | None = None  # the ARM error code answered (default: by status)
    message: str | None = None  # the ARM error message answered (default: "Injected fault.")

    @classmethod
    def parse(cls, body: JSON) -> Fault:
        action = body.get("action", "respond")
        if action not in ("respond", "drop"):
            raise EmulatorError(400, "InvalidParameters", "action must be 'respond' or 'drop'")
        method = body.get("method")
        return cls(
            method=method.upper() if isinstance(method, str) else None,
            path_contains=str(body.get("pathContains", "")),
            action=action,
            status=int(body.get("status", 503)),
            retry_after=_retry_after(body.get("retryAfter")),
            times=int(body.get("times", 1)),
            accept=bool(body.get("accept", False)),
            code=None if body.get("code") is None else str(body["code"]),
            message=None if body.get("message") is None else str(body["message"]),
        )

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0
            and (self.method is None or self.method == method.upper())
            and self.path_contains.lower() in path.lower()
        )


@dataclass
class Settings:
    duration: float = 0.0  # seconds an operation runs on the emulator's clock
    retry_after: int = 1  # the Retry-After the emulator sends with each 202
    latency: float = 0.0  # seconds each Resource Manager request takes (benchmarks)
    # What GET service answers as provisioningState while a backup runs: "Updating" (as
    # Microsoft's how-to says) or "Succeeded" (the REST API does not promise it: the product
    # must stay safe without it). A restore always shows Updating.
    state_during_backup: str = "Updating"


STATES_DURING_BACKUP = ("Updating", "Succeeded")


@dataclass
class Emulator:
    seed: JSON
    store: BlobStore
    defaults: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._clock_offset = timedelta()
        self._frozen_at: datetime | None = None  # set_clock: the clock moves only by advance
        self._log: list[JSON] = []
        self.events = Publisher()  # survives a reset: its delivery thread runs for good
        self._load(self.seed)

    def _load(self, seed: JSON) -> None:
        self.services = services_from_seed(seed)
        self.operations: dict[str, Operation] = {}
        self.faults: list[Fault] = []
        self.fail_next: dict[tuple[str, str, str], tuple[str, str]] = {}
        self.settings = copy.copy(self.defaults)
        self.account = StorageAccount(
            self.store.account_name,
            str(seed["subscriptionId"]),
            str(seed["resourceGroup"]),
            seed.get("storageAccount"),
        )
        principals = [p for s in self.services.values() for p in s.principal_ids()]
        self.role_assignments: list[JSON] = copy.deepcopy(
            seed.get("roleAssignments")
            or default_role_assignments(self.account.resource_id, principals)
        )

    # -- clock -----------------------------------------------------------------------

    def now(self) -> datetime:
        with self._lock:
            base = datetime.now(UTC) if self._frozen_at is None else self._frozen_at
            return base + self._clock_offset

    def set_clock(self, moment: datetime) -> datetime:
        """Stop the clock at ``moment``: from now on it moves only by ``advance``, so a
        simulation's clock and the emulator's stay equal to the microsecond (the year's
        record of what APIM did is then in the simulation's own time)."""
        with self._lock:
            self._frozen_at = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            self._clock_offset = timedelta()
            return self.now()

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._clock_offset += timedelta(seconds=seconds)
            return self.now()

    # -- Resource Manager routes -----------------------------------------------------

    def _service(self, subscription_id: str, resource_group: str, name: str) -> Service:
        service = self.services.get(service_key(subscription_id, resource_group, name))
        if service is None:
            raise EmulatorError(
                404,
                "ResourceNotFound",
                f"The Resource '{SERVICE_TYPE}/{name}' under resource group "
                f"'{resource_group}' was not found.",
            )
        return service

    def _running_kinds(self, service: Service) -> set[str]:
        return {
            op.kind
            for op in self.operations.values()
            if op.running and op.service_key == service.key
        }

    def _provisioning_state(self, service: Service) -> str:
        running = self._running_kinds(service)
        if "restore" in running:
            return "Updating"
        if "backup" in running:
            return self.settings.state_during_backup
        return "Succeeded"

    def get_service(self, subscription_id: str, resource_group: str, name: str) -> JSON:
        with self._lock:
            self.settle()
            service = self._service(subscription_id, resource_group, name)
            return service.to_arm(self._provisioning_state(service))

    def list_workspace_links(self, subscription_id: str, resource_group: str, name: str) -> JSON:
        with self._lock:
            service = self._service(subscription_id, resource_group, name)
            return {"value": service.workspace_links_arm()}

    def list_diagnostic_settings(
        self, subscription_id: str, resource_group: str, name: str
    ) -> JSON:
        with self._lock:
            service = self._service(subscription_id, resource_group, name)
            return {"value": service.diagnostic_settings_arm()}

    def get_storage_account(self, subscription_id: str, resource_group: str, name: str) -> JSON:
        with self._lock:
            self.account.require(subscription_id, resource_group, name)
            return self.account.to_arm()

    def get_blob_service(self, subscription_id: str, resource_group: str, name: str) -> JSON:
        with self._lock:
            self.account.require(subscription_id, resource_group, name)
            return self.account.blob_service_arm()

    def get_container(
        self, subscription_id: str, resource_group: str, name: str, container: str
    ) -> JSON:
        with self._lock:
            self.account.require(subscription_id, resource_group, name)
            return self.account.container_arm(container, self.store.container_exists(container))

    def start_operation(
        self, kind: str, subscription_id: str, resource_group: str, name: str, body: Any
    ) -> Operation:
        """Validate a backup or restore request synchronously, then start it."""
        with self._lock:
            self.settle()
            service = self._service(subscription_id, resource_group, name)
            params = BackupParams.parse(body)
            self._check_tier(service, kind)
            self._check_access(service, params)
            if self._running_kinds(service):  # refused whatever the state shows
                raise EmulatorError(
                    409,
                    "Conflict",
                    f"Service '{service.name}' is being updated by another operation; "
                    "try again later.",
                )
            now = self.now()
            operation = Operation(
                id=_operation_id(service, kind),
                kind=kind,
                service_key=service.key,
                service_name=service.name,
                service_id=service.resource_id,
                params=params,
                started_at=now,
                due_at=now + timedelta(seconds=self.settings.duration),
                forced_failure=self.fail_next.pop(service.key, None),
            )
            self.operations[operation.id] = operation
            # An action in Resource Manager's terms: its event says backup or restore.
            self.events.publish([arm_event(service, "", "POST", now, action=kind)])
            return operation

    def _check_tier(self, service: Service, kind: str) -> None:
        if service.tier not in BACKUP_TIERS:
            raise EmulatorError(
                400,
                "MethodNotAllowedInPricingTier",
                f"Method '{kind}' is not allowed in the '{service.tier}' pricing tier of service "
                f"'{service.name}'.",
            )
        if service.has_workspace_gateways():
            raise EmulatorError(
                400,
                "WorkspaceGatewaysNotSupported",
                f"Backup and restore are not supported for service '{service.name}' because it "
                "has workspace gateways.",
            )

    def _check_access(self, service: Service, params: BackupParams) -> None:
        store = self.store
        if params.storage_account.lower() != store.account_name.lower():
            raise EmulatorError(
                400,
                "InvalidParameters",
                f"Invalid parameter: storageAccount. Storage account '{params.storage_account}' "
                "was not found or cannot be reached.",
            )
        if params.access_type == "AccessKey" and params.access_key != store.account_key:
            raise EmulatorError(
                400,
                "InvalidParameters",
                "Invalid parameter: accessKey. The access key of storage account "
                f"'{params.storage_account}' is missing or wrong.",
            )
        if (
            params.access_type == "SystemAssignedManagedIdentity"
            and not service.has_system_identity()
        ):
            raise EmulatorError(
                400,
                "InvalidParameters",
                f"Invalid parameter: accessType. Service '{service.name}' has no system-assigned "
                "managed identity.",
            )
        if params.access_type == "UserAssignedManagedIdentity" and (
            (params.client_id or "").lower() not in service.user_identity_client_ids()
        ):
            raise EmulatorError(
                400,
                "InvalidParameters",
                f"Invalid parameter: clientId. '{params.client_id}' is not the client id of a "
                f"user-assigned identity of service '{service.name}'.",
            )

    def poll(
        self, subscription_id: str, resource_group: str, name: str, operation_id: str
    ) -> Operation:
        """The operation behind ``{service}/operationresults/{operation_id}``: only under
        the service that started it."""
        with self._lock:
            self.settle()
            operation = self.operations.get(operation_id)
            if operation is None or operation.service_key != service_key(
                subscription_id, resource_group, name
            ):
                raise EmulatorError(
                    404, "OperationNotFound", f"Operation '{operation_id}' was not found."
                )
            return copy.deepcopy(operation)

    def child(
        self, method: str, service_id: tuple[str, str, str], collection: str, name: str, body: Any
    ) -> tuple[int, JSON | None]:
        """A child resource read or changed through Resource Manager (emulator.children);
        a change publishes the events Azure's system topics would (emulator.events)."""
        with self._lock:
            self.settle()
            service = self._service(*service_id)
            collection = collection_name(collection)
            if method == "GET":
                return 200, get_child(service, collection, name)
            created = False
            if method == "PUT":
                resource, created = put_child(service, collection, name, body)
                status: int = 201 if created else 200
            elif method == "PATCH":
                resource, status = patch_child(service, collection, name, body), 200
            elif method == "DELETE":
                if not delete_child(service, collection, name):
                    return 204, None
                resource, status = {}, 200
            else:
                raise EmulatorError(405, "MethodNotAllowed", f"{method} is not allowed here.")
            now = self.now()
            events = [arm_event(service, f"/{collection}/{name}", method, now)]
            own = apim_event(service, collection, name, method, created, now)
            self.events.publish(events if own is None else [own, *events])
            return status, resource or None

    # -- doing the work --------------------------------------------------------------

    def settle(self) -> None:
        """Finish every operation whose time has come, oldest first."""
        with self._lock:
            now = self.now()
            due = [op for op in self.operations.values() if op.running and op.due_at <= now]
            for operation in sorted(due, key=lambda op: op.started_at):
                self._finish(operation, now)

    def _finish(self, operation: Operation, now: datetime) -> None:
        service = self.services.get(operation.service_key)
        try:
            if service is None:
                raise EmulatorError(400, "ResourceNotFound", "The service no longer exists.")
            if operation.forced_failure is not None:
                code, message = operation.forced_failure
                raise EmulatorError(400, code, message)
            if operation.kind == "backup":
                self._do_backup(service, operation)
            else:
                self._do_restore(service, operation, now)
        except EmulatorError as failure:
            operation.status = "Failed"
            operation.error = failure.body()["error"]
        else:
            assert service is not None  # the work raised otherwise
            operation.status = "Succeeded"
            operation.result = service.to_arm("Succeeded")
        operation.completed_at = now

    def _do_backup(self, service: Service, operation: Operation) -> None:
        if self.store.has_cors_rules():
            # What APIM answers in this case: confusing, but that is the point of emulating it.
            raise EmulatorError(
                400,
                "InvalidParameters",
                "Invalid parameter: backupStorageAccount. The storage account "
                f"'{operation.params.storage_account}' could not be used for the backup "
                "(its Blob service has CORS rules).",
            )
        document = {
            "format": BACKUP_FORMAT,
            "service": service.name,
            "serviceId": service.resource_id,
            "sku": copy.deepcopy(service.sku),
            "takenAt": operation.started_at.isoformat(),
            "configuration": copy.deepcopy(service.configuration),
        }
        data = json.dumps(document, indent=2, sort_keys=True).encode()
        self.store.write(operation.params.container, operation.params.backup_name, data)
        operation.size_bytes = len(data)

    def _do_restore(self, service: Service, operation: Operation, now: datetime) -> None:
        params = operation.params
        data = self.store.read(params.container, params.backup_name)
        if data is None:
            raise EmulatorError(
                400,
                "RestoreFailed",
                f"Cannot restore: backup '{params.backup_name}' was not found in container "
                f"'{params.container}' of storage account '{params.storage_account}'.",
            )
        try:
            document = json.loads(data)
            taken_at = datetime.fromisoformat(document["takenAt"])
            backup_tier = str(document["sku"]["name"])
            configuration = document["configuration"]
        except (ValueError, KeyError, TypeError) as err:
            raise EmulatorError(
                400, "RestoreFailed", f"Cannot restore: '{params.backup_name}' is not a backup."
            ) from err
        if now - taken_at > BACKUP_VALIDITY:
            raise EmulatorError(400, "RestoreFailed", "Cannot restore: backup expired")
        if backup_tier != service.tier:
            raise EmulatorError(
                400,
                "RestoreFailed",
                f"Cannot restore: current SKU is '{service.tier}', backup SKU is '{backup_tier}'",
            )
        # Only the configuration comes back: hostnames, identity, network stay as they are.
        service.configuration = copy.deepcopy(configuration)

    # -- control routes --------------------------------------------------------------

    def reset(self, seed: JSON | None) -> None:
        """Back to a fresh world: this seed, or (without one) the seed given at start-up."""
        with self._lock:
            self._load(self.seed if seed is None else seed)
            self._clock_offset = timedelta()
            self.events.reset()
            self._frozen_at = None

    def update_settings(self, body: JSON) -> JSON:
        with self._lock:
            if "duration" in body:
                self.settings.duration = float(body["duration"])
            if "retryAfter" in body:
                self.settings.retry_after = int(body["retryAfter"])
            if "latency" in body:
                self.settings.latency = max(0.0, float(body["latency"]))
            if "stateDuringBackup" in body:
                state = body["stateDuringBackup"]
                if state not in STATES_DURING_BACKUP:
                    raise EmulatorError(
                        400,
                        "InvalidParameters",
                        f"stateDuringBackup must be one of {', '.join(STATES_DURING_BACKUP)}",
                    )
                self.settings.state_during_backup = state
            return {
                "duration": self.settings.duration,
                "retryAfter": self.settings.retry_after,
                "latency": self.settings.latency,
                "stateDuringBackup": self.settings.state_during_backup,
            }

    def find_service(self, name: str) -> Service:
        """Control routes name a service by its name alone (unique in any sane seed)."""
        matches = [s for s in self.services.values() if s.name.lower() == name.lower()]
        if not matches:
            raise EmulatorError(404, "ResourceNotFound", f"No service named '{name}'.")
        return matches[0]

    def set_fail_next(self, name: str, body: JSON) -> None:
        with self._lock:
            service = self.find_service(name)
            code = str(body.get("code", "OperationFailed"))
            message = str(body.get("message", "The operation failed."))
            self.fail_next[service.key] = (code, message)

    def add_fault(self, body: JSON) -> None:
        with self._lock:
            self.faults.append(Fault.parse(body))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first fault matching this request, used up by one."""
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return copy.copy(fault)
            return None

    def record(self, entry: JSON) -> None:
        with self._lock:
            entry["time"] = self.now().isoformat()
            self._log.append(entry)

    def requests(self) -> list[JSON]:
        with self._lock:
            return copy.deepcopy(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def describe_service(self, name: str) -> JSON:
        with self._lock:
            self.settle()
            service = self.find_service(name)
            return {**service.describe(), "provisioningState": self._provisioning_state(service)}

    def patch_service(self, name: str, patch: JSON) -> JSON:
        with self._lock:
            service = self.find_service(name)
            apply_patch(service, patch)
            return service.describe()

    def list_role_assignments(self, scope: str, principal: str | None) -> JSON:
        with self._lock:
            return role_assignments_arm(self.role_assignments, scope, principal)

    def set_role_assignments(self, body: JSON) -> JSON:
        """Replace every role assignment: ``{"value": [{principalId, roleDefinitionId,
        scope, condition?}]}``."""
        with self._lock:
            value = body.get("value")
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise EmulatorError(400, "InvalidParameters", "'value' must be a list of objects")
            self.role_assignments = copy.deepcopy(value)
            return {"value": copy.deepcopy(self.role_assignments)}

    def describe_storage(self) -> JSON:
        with self._lock:
            return self.account.describe()

    def patch_storage(self, patch: JSON) -> JSON:
        with self._lock:
            return self.account.patch(patch)

    def list_operations(self, since: datetime | None = None) -> list[JSON]:
        """Every operation; with ``since``, only those still running or that started or
        ended at or after it (an observer that polls often reads what changed, not all)."""
        with self._lock:
            self.settle()
            return [
                op.describe()
                for op in self.operations.values()
                if since is None
                or op.running
                or op.started_at >= since
                or (op.completed_at is not None and op.completed_at >= since)
            ]


def _operation_id(service: Service, kind: str) -> str:
    """An id of the form APIM answers: base64 of ``{location}:{service}_{Kind}_{hex}``
    (padding included, so ``=`` appears in the URL path as it does in Azure). URL-safe
    base64, so the id is always one path segment."""
    raw = f"{service.location_slug}:{service.name}_{kind.title()}_{uuid.uuid4().hex}"
    return base64.urlsafe_b64encode(raw.encode()).decode()
