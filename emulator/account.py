"""The backup storage account as Resource Manager shows it (Microsoft.Storage, 2023-05-01).

Azurite serves the data plane (blobs, tables, CORS); what only the control plane knows
(the firewall, the blob service's versioning and soft delete, a container's immutability
policy) lives here, so the doctor can read it as it would in Azure. A seed's
``storageAccount`` object, or ``PATCH /_emulator/storage``, changes it.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from emulator.model import JSON, EmulatorError

STORAGE_TYPE = "Microsoft.Storage/storageAccounts"
PATCHABLE = ("networkAcls", "publicNetworkAccess", "blobService", "immutabilityPolicies")


def default_account() -> JSON:
    """What the templates deploy (infra/app/backup-storage.bicep), lockdown off."""
    return {
        "networkAcls": {
            "defaultAction": "Allow",
            "bypass": "AzureServices",
            "ipRules": [],
            "virtualNetworkRules": [],
            "resourceAccessRules": [],
        },
        "publicNetworkAccess": "Enabled",
        "blobService": {
            "isVersioningEnabled": True,
            "deleteRetentionPolicy": {"enabled": True, "days": 14},
            "containerDeleteRetentionPolicy": {"enabled": True, "days": 14},
        },
        # container name -> {immutabilityPeriodSinceCreationInDays, state,
        # allowProtectedAppendWritesAll}; none by default (immutability is opt-in).
        "immutabilityPolicies": {},
    }


class StorageAccount:
    def __init__(self, name: str, subscription_id: str, resource_group: str, seed: Any) -> None:
        self.name = name
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.state = default_account()
        if isinstance(seed, dict) and seed:
            self.patch(seed)

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{STORAGE_TYPE}/{self.name}"
        )

    def matches(self, subscription_id: str, resource_group: str, name: str) -> bool:
        return (subscription_id.lower(), resource_group.lower(), name.lower()) == (
            self.subscription_id.lower(),
            self.resource_group.lower(),
            self.name.lower(),
        )

    def require(self, subscription_id: str, resource_group: str, name: str) -> None:
        if not self.matches(subscription_id, resource_group, name):
            raise EmulatorError(
                404,
                "ResourceNotFound",
                f"The Resource '{STORAGE_TYPE}/{name}' under resource group "
                f"'{resource_group}' was not found.",
            )

    def patch(self, patch: JSON) -> JSON:
        unknown = set(patch) - set(PATCHABLE)
        if unknown:
            raise EmulatorError(400, "InvalidParameters", f"unknown patch keys: {sorted(unknown)}")
        for key in ("networkAcls", "blobService"):
            if key in patch:
                self.state[key] = {**self.state[key], **copy.deepcopy(patch[key])}
        if "publicNetworkAccess" in patch:
            self.state["publicNetworkAccess"] = str(patch["publicNetworkAccess"])
        if "immutabilityPolicies" in patch:
            self.state["immutabilityPolicies"] = copy.deepcopy(patch["immutabilityPolicies"])
        return self.describe()

    def describe(self) -> JSON:
        return {"id": self.resource_id, "name": self.name, **copy.deepcopy(self.state)}

    def to_arm(self) -> JSON:
        """GET .../storageAccounts/{name}."""
        return {
            "id": self.resource_id,
            "name": self.name,
            "type": STORAGE_TYPE,
            "kind": "StorageV2",
            "sku": {"name": "Standard_GRS", "tier": "Standard"},
            "properties": {
                "provisioningState": "Succeeded",
                "publicNetworkAccess": self.state["publicNetworkAccess"],
                "networkAcls": copy.deepcopy(self.state["networkAcls"]),
                "allowBlobPublicAccess": False,
                "minimumTlsVersion": "TLS1_2",
            },
        }

    def blob_service_arm(self) -> JSON:
        """GET .../blobServices/default."""
        return {
            "id": f"{self.resource_id}/blobServices/default",
            "name": "default",
            "type": f"{STORAGE_TYPE}/blobServices",
            "properties": copy.deepcopy(self.state["blobService"]),
        }

    def container_arm(self, container: str, exists: bool) -> JSON:
        """GET .../blobServices/default/containers/{container}: its immutability policy
        (``properties.immutabilityPolicy``) as Resource Manager reports it."""
        if not exists:
            raise EmulatorError(404, "ContainerNotFound", "The specified container does not exist.")
        policy = self.state["immutabilityPolicies"].get(container)
        properties: JSON = {"publicAccess": "None", "hasImmutabilityPolicy": policy is not None}
        if policy is not None:
            properties["immutabilityPolicy"] = {
                "etag": '"8d0000000000000"',
                "properties": {
                    "immutabilityPeriodSinceCreationInDays": int(
                        policy.get("immutabilityPeriodSinceCreationInDays", 30)
                    ),
                    "state": str(policy.get("state", "Unlocked")),
                    "allowProtectedAppendWrites": bool(
                        policy.get("allowProtectedAppendWrites", False)
                    ),
                    "allowProtectedAppendWritesAll": bool(
                        policy.get("allowProtectedAppendWritesAll", True)
                    ),
                },
            }
        return {
            "id": f"{self.resource_id}/blobServices/default/containers/{container}",
            "name": container,
            "type": f"{STORAGE_TYPE}/blobServices/containers",
            "properties": properties,
        }


BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
ROLE_DEFINITIONS = "/providers/Microsoft.Authorization/roleDefinitions/"


def default_role_assignments(account_id: str, principals: list[str]) -> list[JSON]:
    """What infra/ grants APIM's identities, widened to the account (tests name their own
    containers): Storage Blob Data Contributor for each seed principal."""
    subscription = account_id.split("/")[2]
    return [
        {
            "principalId": principal,
            "roleDefinitionId": f"/subscriptions/{subscription}{ROLE_DEFINITIONS}"
            f"{BLOB_DATA_CONTRIBUTOR}",
            "scope": account_id,
        }
        for principal in principals
    ]


def role_assignments_arm(assignments: list[JSON], scope: str, principal: str | None) -> JSON:
    """GET {scope}/providers/Microsoft.Authorization/roleAssignments, filtered as
    ``$filter=assignedTo('{principal}')`` is: the principal's assignments at, above or
    below the scope (without a filter: those at or above it)."""
    wanted = scope.rstrip("/").lower()
    items = []
    for item in assignments:
        at = str(item.get("scope", "")).rstrip("/").lower()
        above = wanted == at or wanted.startswith(at + "/")
        below = at.startswith(wanted + "/")
        if principal is not None and str(item.get("principalId", "")).lower() != principal:
            continue
        if not (above or (below and principal is not None)):
            continue
        key = f"{at}|{item.get('principalId')}|{item.get('roleDefinitionId')}"
        name = str(item.get("name") or uuid.uuid5(uuid.NAMESPACE_URL, key))
        items.append(
            {
                "id": f"{item.get('scope')}/providers/Microsoft.Authorization/roleAssignments/"
                f"{name}",
                "name": name,
                "type": "Microsoft.Authorization/roleAssignments",
                "properties": {
                    "roleDefinitionId": item.get("roleDefinitionId"),
                    "principalId": item.get("principalId"),
                    "principalType": item.get("principalType", "ServicePrincipal"),
                    "scope": item.get("scope"),
                    "condition": item.get("condition"),
                    "conditionVersion": "2.0" if item.get("condition") else None,
                },
            }
        )
    return {"value": items}
