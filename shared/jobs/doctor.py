"""``python -m shared doctor``: can the configured setup back up and restore, and what to
fix when it cannot. Read-only, but for one harmless write per table (a probe entity
created and deleted at once) that proves the function may write it.

In order: the function's own identity (reads each service, writes both tables, lists
the container), then each APIM service (tier, the identity BACKUP_ACCESS_TYPE names,
workspace gateways, restore targets' tiers, the blob role), then the storage account
(CORS, and through Resource Manager when its ID is given: firewall, versioning, soft
delete, the container's immutability policy). What each reading means is decided in
shared.rules.doctor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError

from shared.adapters.probes import StorageAccountReader, probe_listing, probe_table
from shared.parallel import run_each
from shared.rules import blobroles, doctor, errors
from shared.rules.doctor import Finding
from shared.rules.naming import AccountRef, ServiceId, storage_account_ref
from shared.rules.service import AccessType, ServiceInfo
from shared.runtime import Runtime
from shared.settings import Settings

ID_HINT = "pass --storage-account-id (azd env get-value BACKUP_STORAGE_ACCOUNT_ID, or the portal)"


@dataclass(frozen=True)
class Reading:
    """One service as Resource Manager showed it, or why it could not be read."""

    service: ServiceId
    info: ServiceInfo | None
    identity: dict[str, Any] | None
    error: str | None


def run(
    runtime: Runtime, storage_account_id: str | None = None, *, write_probes: bool = True
) -> list[Finding]:
    """Every check, in the order printed. ``write_probes=False``: no probe entity is
    written, and the table lines say they were not checked."""
    settings = runtime.settings
    ref = (
        None
        if storage_account_id is None
        else storage_account_ref(storage_account_id, settings.storage_account)
    )
    scope = (
        None
        if ref is None
        else f"{ref.resource_id}/blobServices/default/containers/{settings.container}"
    )
    services = _unique([*settings.apim_services, *settings.restore_targets])
    readings = run_each(services, lambda s: _read(runtime, s), settings.max_parallel, "doctor")
    findings = [doctor.can_read_service(r.service.name, r.error) for r in readings]
    findings += _tables_and_container(runtime, write_probes)
    reader = StorageAccountReader(runtime.clients.apim, settings.arm_endpoint)
    findings += [
        f for r in readings if r.info is not None for f in _service(runtime, r, scope, reader)
    ]
    findings += _targets(runtime, readings)
    findings += _storage(runtime, ref)
    return findings


def _unique(services: Sequence[ServiceId]) -> list[ServiceId]:
    seen: dict[str, ServiceId] = {}
    for service in services:
        seen.setdefault(service.key, service)
    return list(seen.values())


def _read(runtime: Runtime, service: ServiceId) -> Reading:
    try:
        info, identity = runtime.apim.inspect(service)
    except errors.ProductError as exc:
        return Reading(service, None, None, exc.message)
    return Reading(service, info, identity, None)


def _tables_and_container(runtime: Runtime, write_probes: bool) -> list[Finding]:
    settings = runtime.settings
    found = [
        doctor.can_write_table(name, probe_table(runtime.clients.table(name)))
        if write_probes
        else doctor.not_checked(
            f"identity writes table {name}",
            "--no-write",
            "run without --no-write as the function's identity, or check its "
            "'Storage Table Data Contributor' assignment",
        )
        for name in (settings.ledger_table, settings.operations_table)
    ]
    found.append(
        doctor.can_list_container(settings.container, probe_listing(runtime.blobs.container))
    )
    return found


def _service(
    runtime: Runtime, reading: Reading, scope: str | None, reader: StorageAccountReader
) -> list[Finding]:
    settings = runtime.settings
    info, name = reading.info, reading.service.name
    assert info is not None
    return [
        doctor.service_tier(name, info.sku),
        doctor.service_identity(
            name, settings.access_type, reading.identity, settings.identity_client_id
        ),
        doctor.workspace_gateways(name, info.has_workspace_gateways),
        *_role(runtime, reading, scope, reader),
    ]


def _role(
    runtime: Runtime, reading: Reading, scope: str | None, reader: StorageAccountReader
) -> list[Finding]:
    """The blob role of the service's identity on the container, read through Resource
    Manager when the account's ID is known."""
    settings = runtime.settings
    if settings.access_type is AccessType.ACCESS_KEY:
        return []
    principal = _principal(reading.identity or {}, settings)
    name = reading.service.name
    if principal is None:
        return []  # no such identity on the service: its identity line has failed already
    if scope is None:
        why = "the account's resource ID is not known (--storage-account-id)"
        return [blobroles.role_assignment_not_checked(name, principal, None, why)]
    read = reader.role_assignments(scope, principal)
    if read.body is None:
        why = f"role assignments unreadable ({read.error or 'not found'})"
        return [blobroles.role_assignment_not_checked(name, principal, scope, why)]
    may_write = any(s.key == reading.service.key for s in settings.apim_services)
    items = [i for i in read.body.get("value") or [] if isinstance(i, dict)]
    return [blobroles.blob_role(name, principal, scope, items, may_write)]


def _principal(identity: dict[str, Any], settings: Settings) -> str | None:
    """The object id of the identity BACKUP_ACCESS_TYPE names, if the service has it."""
    if settings.access_type is AccessType.SYSTEM_ASSIGNED:
        found = identity.get("principalId")
        system = "SystemAssigned" in str(identity.get("type"))
        return str(found) if system and found else None
    wanted = (settings.identity_client_id or "").lower()
    for value in (identity.get("userAssignedIdentities") or {}).values():
        if isinstance(value, dict) and str(value.get("clientId", "")).lower() == wanted:
            return str(value.get("principalId")) if value.get("principalId") else None
    return None


def _targets(runtime: Runtime, readings: Sequence[Reading]) -> list[Finding]:
    """Each restore target that is not itself a source takes backups of its own tier."""
    sources = {s.key for s in runtime.settings.apim_services}
    skus = {r.service.name: r.info.sku for r in readings if r.info and r.service.key in sources}
    return [
        doctor.restore_target_tier(r.service.name, r.info.sku, skus)
        for r in readings
        if r.info is not None and r.service.key not in sources and skus
    ]


def _storage(runtime: Runtime, ref: AccountRef | None) -> list[Finding]:
    account = runtime.settings.storage_account
    try:
        found = [doctor.cors(account, runtime.blobs.cors_rule_count())]
    except AzureError as exc:
        found = [
            doctor.unreachable(
                f"storage {account} reachable",
                f"the Blob service did not answer: {type(exc).__name__}",
                "check BACKUP_STORAGE (or BACKUP_STORAGE__blobServiceUri) and the account's "
                "firewall for the function's network",
            )
        ]
    if ref is None:
        return [
            *found,
            doctor.not_checked(
                f"storage {account} network, versioning, soft delete, immutability",
                "the account's resource ID is not known",
                ID_HINT,
            ),
        ]
    return found + _storage_arm(runtime, ref)


def _storage_arm(runtime: Runtime, ref: AccountRef) -> list[Finding]:
    settings = runtime.settings
    reader = StorageAccountReader(runtime.clients.apim, settings.arm_endpoint)
    base = ref.resource_id
    check = f"storage {ref.name} Resource Manager"
    account = reader.get(ref.subscription_id, base)
    if account.error is not None or account.body is None:
        why = account.error or "Resource Manager has no such account"
        fix = "give the function's identity Reader on the account; check --storage-account-id"
        return [doctor.unreachable(check, why, fix)]
    ids = [s.resource_id for s in settings.apim_services]
    props = account.body.get("properties") or {}
    found = [doctor.network(ref.name, props, settings.access_type, ids)]
    blob_service = reader.get(ref.subscription_id, f"{base}/blobServices/default")
    if blob_service.body is not None:
        found += doctor.blob_protection(ref.name, blob_service.body.get("properties") or {})
    else:
        why = blob_service.error or "no blob service"
        found.append(doctor.not_checked(f"storage {ref.name} versioning", why, ID_HINT))
    container = reader.get(
        ref.subscription_id, f"{base}/blobServices/default/containers/{settings.container}"
    )
    if container.body is not None:
        properties = container.body.get("properties") or {}
        policy = properties.get("immutabilityPolicy")
        if not properties.get("hasImmutabilityPolicy", policy is not None):
            policy = None  # Resource Manager may show an empty policy where there is none
        found.append(doctor.immutability(settings.container, policy, settings.retention_days))
    else:
        why = container.error or "the container does not exist"
        found.append(
            doctor.not_checked(f"container {settings.container} immutability", why, "see above")
        )
    return found
