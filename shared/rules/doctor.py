"""What each reading of the doctor means, and what to fix: one Finding per check.

``python -m shared doctor`` reads (shared.jobs.doctor, through the adapters); these
functions only judge what was read, in APIM's and Azure's own terms. A reading that
could not be made is passed as ``None`` (or an error text) and judged as such: a check
that was not made is never reported OK.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.rules.service import BACKUP_TIERS, AccessType

BLOB_ROLES = "Storage Blob Data Contributor"  # what infra/ grants APIM and the function


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str
    what: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level.value} {self.check}: {self.what}"
        return f"{text} — {self.fix}" if self.fix else text


def exit_code(findings: Iterable[Finding]) -> int:
    """Non-zero when any check failed; warnings alone do not fail the doctor."""
    return 1 if any(f.level is Level.FAIL for f in findings) else 0


def _ok(check: str, what: str) -> Finding:
    return Finding(Level.OK, check, what)


# The function's own identity ------------------------------------------------------------


def can_read_service(service: str, error: str | None) -> Finding:
    check = f"identity reads {service}"
    if error is None:
        return _ok(check, "Resource Manager answered the service's GET")
    return Finding(
        Level.FAIL,
        check,
        error,
        "give the function's identity a role with Microsoft.ApiManagement/service/read on the "
        "service (infra/ assigns 'API Management Service Operator Role' or the custom "
        "'APIM Backup Source'); check APIM_SERVICES names the right resource",
    )


def can_write_table(table: str, outcome: str | None) -> Finding:
    """``outcome``: None (a probe entity was created and deleted), "missing" (no such
    table yet), or why the write failed."""
    check = f"identity writes table {table}"
    if outcome is None:
        return _ok(check, "a probe entity was created and deleted")
    if outcome == "missing":
        return Finding(
            Level.WARN,
            check,
            "the table does not exist yet, so no probe was written",
            "the function creates it on first use; infra/ creates it at provision: "
            "run azd provision, or check LEDGER_TABLE/OPERATIONS_TABLE",
        )
    return Finding(
        Level.FAIL,
        check,
        outcome,
        f"give the function's identity 'Storage Table Data Contributor' on table {table} "
        "(or the account)",
    )


def can_list_container(container: str, outcome: str | None) -> Finding:
    """``outcome``: None (listed), "missing" (no container) or why the listing failed."""
    check = f"identity lists container {container}"
    if outcome is None:
        return _ok(check, "the container's blobs could be listed")
    if outcome == "missing":
        return Finding(
            Level.FAIL,
            check,
            "the container does not exist (infra/ creates it and scopes APIM's blob role to "
            "it: a role on a missing container lets APIM write nothing)",
            f"create it (az storage container create --name {container} --auth-mode login "
            "--account-name <account>) or run azd provision; check BACKUP_CONTAINER",
        )
    return Finding(
        Level.FAIL,
        check,
        outcome,
        f"give the function's identity '{BLOB_ROLES}' on container {container}",
    )


# Each APIM service -------------------------------------------------------------------------


def service_tier(service: str, sku: str) -> Finding:
    check = f"{service} tier"
    if sku in BACKUP_TIERS:
        return _ok(check, f"{sku} supports backup and restore")
    return Finding(
        Level.FAIL,
        check,
        f"{sku} has no backup and restore (Microsoft.ApiManagement/service/backup is offered "
        "only on Developer, Basic, Standard and Premium)",
        "remove the service from APIM_SERVICES, or move it to a classic tier",
    )


def service_identity(
    service: str, access: AccessType, identity: Mapping[str, Any] | None, client_id: str | None
) -> Finding:
    """The identity BACKUP_ACCESS_TYPE names must be on the service (APIM signs in to
    storage as that identity)."""
    check = f"{service} identity"
    kind = str((identity or {}).get("type", "None"))
    if access is AccessType.ACCESS_KEY:
        return _ok(check, "BACKUP_ACCESS_TYPE=AccessKey: APIM uses the account key, no identity")
    if access is AccessType.SYSTEM_ASSIGNED:
        if "SystemAssigned" in kind:
            principal = (identity or {}).get("principalId", "?")
            return _ok(check, f"system-assigned identity on the service (principal {principal})")
        return Finding(
            Level.FAIL,
            check,
            f"BACKUP_ACCESS_TYPE=SystemAssignedManagedIdentity but the service's identity is "
            f"{kind}",
            f"turn it on: az apim update --name {service} --resource-group <rg> "
            "--enable-managed-identity true (then grant it the blob role)",
        )
    found = {
        str(v.get("clientId", "")).lower()
        for v in ((identity or {}).get("userAssignedIdentities") or {}).values()
        if isinstance(v, Mapping)
    }
    if client_id and client_id.lower() in found:
        return _ok(check, f"user-assigned identity {client_id} is on the service")
    return Finding(
        Level.FAIL,
        check,
        f"BACKUP_IDENTITY_CLIENT_ID {client_id} is not a user-assigned identity of the service "
        f"(identity type {kind})",
        "assign that identity to the service (portal: Managed identities, User assigned), or "
        "set BACKUP_IDENTITY_CLIENT_ID to the client id of one it has",
    )


def workspace_gateways(service: str, present: bool) -> Finding:
    check = f"{service} workspace gateways"
    if not present:
        return _ok(check, "none")
    return Finding(
        Level.FAIL,
        check,
        "the service has workspace gateways: API Management does not back up or restore such "
        "a service",
        "remove the workspace gateways, or the service from APIM_SERVICES",
    )


def restore_target_tier(target: str, target_sku: str, source_skus: Mapping[str, str]) -> Finding:
    """A restore target takes only backups of its own tier: some source must share it."""
    check = f"restore target {target} tier"
    same = sorted(name for name, sku in source_skus.items() if sku == target_sku)
    if same:
        return _ok(check, f"{target_sku}, as {', '.join(same)}")
    tiers = ", ".join(f"{name} {sku}" for name, sku in sorted(source_skus.items()))
    return Finding(
        Level.FAIL,
        check,
        f"{target_sku}, but no service in APIM_SERVICES is ({tiers}): API Management restores "
        "only into the tier the backup was taken on",
        "move the target to its sources' tier, or remove it from RESTORE_TARGETS",
    )


# The storage account ------------------------------------------------------------------------


def cors(account: str, rules: int | None) -> Finding:
    check = f"storage {account} CORS"
    if rules is None:
        return Finding(
            Level.WARN,
            check,
            "not checked: the identity may not read the Blob service's properties",
            "give it Reader on the account, or check: az storage cors list --services b "
            f"--account-name {account}",
        )
    if rules == 0:
        return _ok(check, "no CORS rules on the Blob service")
    return Finding(
        Level.FAIL,
        check,
        f"{rules} CORS rule(s) on the Blob service: API Management's backup fails while CORS "
        "is enabled",
        f"az storage cors clear --services b --account-name {account}",
    )


def network(
    account: str, properties: Mapping[str, Any], access: AccessType, service_ids: Sequence[str]
) -> Finding:
    """Can APIM reach the account through its firewall? APIM passes a deny-by-default
    firewall as a trusted service, with its system-assigned identity only (Microsoft
    Learn, "Back up and restore ... API Management", storage firewall)."""
    check = f"storage {account} network"
    public = str(properties.get("publicNetworkAccess") or "Enabled")
    acls = properties.get("networkAcls") or {}
    if public.lower() == "disabled":
        return Finding(
            Level.FAIL,
            check,
            "publicNetworkAccess is Disabled: API Management's backup reaches storage over the "
            "public endpoint",
            f"az storage account update --name {account} --public-network-access Enabled "
            "--default-action Deny --bypass AzureServices",
        )
    if str(acls.get("defaultAction", "Allow")).lower() == "allow":
        return _ok(check, "the firewall allows all networks")
    if access is not AccessType.SYSTEM_ASSIGNED:
        return Finding(
            Level.FAIL,
            check,
            f"the firewall denies by default and BACKUP_ACCESS_TYPE is {access.value}: only a "
            "system-assigned identity passes it as a trusted service",
            "set BACKUP_ACCESS_TYPE=SystemAssignedManagedIdentity, or open the firewall",
        )
    bypass = str(acls.get("bypass") or "")
    if "azureservices" in bypass.lower():
        return _ok(check, "deny by default, trusted Azure services (APIM) bypass it")
    allowed = {str(r.get("resourceId", "")).lower() for r in acls.get("resourceAccessRules") or []}
    missing = [s for s in service_ids if s.lower() not in allowed]
    if not missing:
        return _ok(check, "deny by default, each service allowed by a resource instance rule")
    return Finding(
        Level.FAIL,
        check,
        f"the firewall denies by default without the trusted services bypass (bypass: "
        f"{bypass or 'None'}): API Management cannot write backups",
        f"az storage account update --name {account} --bypass AzureServices",
    )


def blob_protection(account: str, service_props: Mapping[str, Any]) -> list[Finding]:
    """Versioning and soft delete: the README's second chances; a warning when off."""
    check = f"storage {account}"
    found = []
    if service_props.get("isVersioningEnabled"):
        found.append(_ok(f"{check} versioning", "on"))
    else:
        found.append(
            Finding(
                Level.WARN,
                f"{check} versioning",
                "off: an overwritten or deleted backup is gone",
                f"az storage account blob-service-properties update --account-name {account} "
                "--enable-versioning true",
            )
        )
    policy = service_props.get("deleteRetentionPolicy") or {}
    if policy.get("enabled"):
        found.append(_ok(f"{check} soft delete", f"{policy.get('days')} days"))
    else:
        found.append(
            Finding(
                Level.WARN,
                f"{check} soft delete",
                "off: a deleted backup cannot be undeleted",
                f"az storage account blob-service-properties update --account-name {account} "
                "--enable-delete-retention true --delete-retention-days 14",
            )
        )
    return found


def immutability(container: str, policy: Mapping[str, Any] | None, retention_days: int) -> Finding:
    """The container's time-based retention policy (``properties.immutabilityPolicy``
    of the container) against RETENTION_DAYS. None: no policy (the default)."""
    check = f"container {container} immutability"
    if policy is None:
        return _ok(check, "no policy (BACKUP_IMMUTABILITY=off, the default)")
    props = policy.get("properties") or policy
    days = int(props.get("immutabilityPeriodSinceCreationInDays") or 0)
    state = str(props.get("state") or "Unlocked")
    what = f"{state} policy of {days} days, RETENTION_DAYS {retention_days}"
    if days > retention_days:
        fix = (
            f"raise RETENTION_DAYS to {days} (a locked period cannot be shortened)"
            if days <= 30
            else "nothing shortens a locked policy: prune will be refused until each blob "
            "is older than the period"
        )
        if state.lower() != "locked":
            fix = (
                f"shorten the policy: az storage container immutability-policy create "
                f"--container-name {container} --period {retention_days} (or "
                f"backupImmutabilityDays: {retention_days}; azd provision)"
            )
        return Finding(
            Level.FAIL,
            check,
            f"{what}: pruning's deletes are refused until a backup is {days} days old",
            fix,
        )
    if not props.get("allowProtectedAppendWritesAll"):
        return Finding(
            Level.WARN,
            check,
            f"{what}, without allowProtectedAppendWritesAll: APIM's write may be refused",
            "see infra/README.md, Immutability: opt-in",
        )
    if state.lower() != "locked":
        return Finding(
            Level.WARN,
            check,
            f"{what}: an administrator can still remove it",
            "lock it once a backup has succeeded under it (infra/README.md, Immutability and "
            "pruning), then azd env set BACKUP_IMMUTABILITY locked",
        )
    if days < retention_days:
        return Finding(
            Level.WARN,
            check,
            f"{what}: a backup can be deleted for its last {retention_days - days} days",
            f"az storage container immutability-policy extend --container-name {container} "
            f"--period {retention_days} --if-match <etag> --account-name <account>",
        )
    return _ok(check, what)


def not_checked(check: str, why: str, how: str) -> Finding:
    return Finding(Level.WARN, check, f"not checked: {why}", how)


def unreachable(check: str, error: str, fix: str) -> Finding:
    return Finding(Level.FAIL, check, error, fix)
