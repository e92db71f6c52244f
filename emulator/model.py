"""The emulated services: how a seed document becomes services, and their ARM shape."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

PROVIDER = "Microsoft.ApiManagement"
SERVICE_TYPE = f"{PROVIDER}/service"

# Tiers that have backup and restore at all (Microsoft's docs): not Consumption, no v2 tier.
BACKUP_TIERS = frozenset({"Developer", "Basic", "Standard", "Premium"})
KNOWN_TIERS = BACKUP_TIERS | {"Consumption", "BasicV2", "StandardV2", "PremiumV2"}


class EmulatorError(Exception):
    """An answer in the Resource Manager error shape: status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> JSON:
        return {"error": {"code": self.code, "message": self.message}}


def service_key(subscription_id: str, resource_group: str, name: str) -> tuple[str, str, str]:
    """ARM matches subscription, resource group and resource names case-insensitively."""
    return (subscription_id.lower(), resource_group.lower(), name.lower())


@dataclass
class Service:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    sku: JSON
    identity: JSON | None
    properties: JSON
    workspace_links: list[JSON]
    configuration: JSON
    tags: JSON = field(default_factory=dict)
    # Azure Monitor diagnostic settings: an extension resource of the service in ARM
    # (Microsoft.Insights/diagnosticSettings), items of {name, properties}.
    diagnostic_settings: list[JSON] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return service_key(self.subscription_id, self.resource_group, self.name)

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{SERVICE_TYPE}/{self.name}"
        )

    @property
    def tier(self) -> str:
        return str(self.sku.get("name", ""))

    @property
    def location_slug(self) -> str:
        """The form ARM uses in operation URLs: 'West Europe' -> 'westeurope'."""
        return self.location.replace(" ", "").lower()

    def has_system_identity(self) -> bool:
        return self.identity is not None and "SystemAssigned" in str(self.identity.get("type", ""))

    def user_identity_client_ids(self) -> set[str]:
        identities = (self.identity or {}).get("userAssignedIdentities") or {}
        return {str(v.get("clientId", "")).lower() for v in identities.values() if v}

    def principal_ids(self) -> list[str]:
        """The object ids of the service's identities, system- and user-assigned."""
        identity = self.identity or {}
        ids = [str(identity["principalId"])] if identity.get("principalId") else []
        users = identity.get("userAssignedIdentities") or {}
        return ids + [str(v["principalId"]) for v in users.values() if v and v.get("principalId")]

    def has_workspace_gateways(self) -> bool:
        return any(link.get("gateways") for link in self.workspace_links)

    def to_arm(self, provisioning_state: str) -> JSON:
        """The resource as GET .../service/{name} answers it (API version 2024-05-01)."""
        properties = copy.deepcopy(self.properties)
        properties["provisioningState"] = provisioning_state
        properties["targetProvisioningState"] = (
            "Succeeded" if provisioning_state == "Updating" else ""
        )
        resource: JSON = {
            "id": self.resource_id,
            "name": self.name,
            "type": SERVICE_TYPE,
            "location": self.location,
            "tags": copy.deepcopy(self.tags),
            "etag": "AAAAAAAAAAA=",
            "sku": copy.deepcopy(self.sku),
            "properties": properties,
        }
        if self.identity is not None:
            resource["identity"] = copy.deepcopy(self.identity)
        return resource

    def workspace_links_arm(self) -> list[JSON]:
        """Items of GET .../workspaceLinks: the SDK reads properties.workspaceId/gateways."""
        return [
            {
                "id": f"{self.resource_id}/workspaceLinks/{link['name']}",
                "name": link["name"],
                "type": f"{SERVICE_TYPE}/workspaceLinks",
                "properties": {
                    "workspaceId": link.get("workspaceId", ""),
                    "gateways": [{"id": gateway} for gateway in link.get("gateways", [])],
                },
            }
            for link in self.workspace_links
        ]

    def diagnostic_settings_arm(self) -> list[JSON]:
        """Items of GET {service}/providers/Microsoft.Insights/diagnosticSettings."""
        return [
            {
                "id": f"{self.resource_id}/providers/microsoft.insights/diagnosticSettings/"
                f"{item['name']}",
                "name": item["name"],
                "type": "Microsoft.Insights/diagnosticSettings",
                "properties": copy.deepcopy(item.get("properties", {})),
            }
            for item in self.diagnostic_settings
        ]

    def describe(self) -> JSON:
        """The emulator's own view (control routes): everything, including configuration."""
        return {
            "id": self.resource_id,
            "name": self.name,
            "location": self.location,
            "sku": copy.deepcopy(self.sku),
            "identity": copy.deepcopy(self.identity),
            "properties": copy.deepcopy(self.properties),
            "workspaceLinks": copy.deepcopy(self.workspace_links),
            "configuration": copy.deepcopy(self.configuration),
            "diagnosticSettings": copy.deepcopy(self.diagnostic_settings),
        }


# Protocols and ciphers settings as a new service reports them (keys are ARM's own).
_GATEWAY_SECURITY = "Microsoft.WindowsAzure.ApiManagement.Gateway.Security"


def _default_properties(name: str) -> JSON:
    """What a freshly created service reports; a seed overrides any of it."""
    return {
        "publisherEmail": "apim-admin@example.com",
        "publisherName": "Example",
        "gatewayUrl": f"https://{name}.azure-api.net",
        "managementApiUrl": f"https://{name}.management.azure-api.net",
        "developerPortalUrl": f"https://{name}.developer.azure-api.net",
        "hostnameConfigurations": [
            {
                "type": "Proxy",
                "hostName": f"{name}.azure-api.net",
                "negotiateClientCertificate": False,
                "defaultSslBinding": True,
                "certificateSource": "BuiltIn",
            }
        ],
        "customProperties": {
            f"{_GATEWAY_SECURITY}.Protocols.Tls10": "False",
            f"{_GATEWAY_SECURITY}.Protocols.Tls11": "False",
            f"{_GATEWAY_SECURITY}.Backend.Protocols.Ssl30": "False",
        },
        "virtualNetworkType": "None",
        "virtualNetworkConfiguration": None,
        "platformVersion": "stv2",
        "publicNetworkAccess": "Enabled",
        "additionalLocations": None,
        "createdAtUtc": "2024-01-01T00:00:00Z",
        "disableGateway": False,
        "natGatewayState": "Disabled",
    }


def _empty_configuration() -> JSON:
    return {"apis": [], "products": [], "namedValues": [], "users": [], "subscriptions": []}


def service_from_seed(entry: JSON, subscription_id: str, resource_group: str) -> Service:
    name = str(entry["name"])
    sku = {"name": "Developer", "capacity": 1, **entry.get("sku", {})}
    if sku["name"] not in KNOWN_TIERS:
        raise ValueError(f"seed: service {name!r} has unknown SKU {sku['name']!r}")
    properties = _default_properties(name)
    properties.update(copy.deepcopy(entry.get("properties", {})))
    configuration = _empty_configuration()
    configuration.update(copy.deepcopy(entry.get("configuration", {})))
    return Service(
        subscription_id=str(entry.get("subscriptionId", subscription_id)),
        resource_group=str(entry.get("resourceGroup", resource_group)),
        name=name,
        location=str(entry.get("location", "West Europe")),
        sku=sku,
        identity=copy.deepcopy(entry.get("identity")),
        properties=properties,
        workspace_links=copy.deepcopy(entry.get("workspaceLinks", [])),
        configuration=configuration,
        tags=copy.deepcopy(entry.get("tags", {})),
        diagnostic_settings=copy.deepcopy(entry.get("diagnosticSettings", [])),
    )


def services_from_seed(seed: JSON) -> dict[tuple[str, str, str], Service]:
    subscription_id = str(seed["subscriptionId"])
    resource_group = str(seed["resourceGroup"])
    services = [service_from_seed(e, subscription_id, resource_group) for e in seed["services"]]
    return {service.key: service for service in services}


def apply_patch(service: Service, patch: JSON) -> None:
    """Change a service the way a test needs (tier, identity, workspace links...).

    Keys: sku (merged), identity (replaced; null removes it), workspaceLinks,
    configuration and diagnosticSettings (replaced), properties and tags (merged), location.
    """
    known = {
        "sku",
        "identity",
        "workspaceLinks",
        "configuration",
        "properties",
        "tags",
        "location",
        "diagnosticSettings",
    }
    unknown = set(patch) - known
    if unknown:
        raise EmulatorError(400, "InvalidParameters", f"unknown patch keys: {sorted(unknown)}")
    if "sku" in patch:
        sku = {**service.sku, **patch["sku"]}
        if sku.get("name") not in KNOWN_TIERS:
            raise EmulatorError(400, "InvalidParameters", f"unknown SKU {sku.get('name')!r}")
        service.sku = sku
    if "identity" in patch:
        service.identity = copy.deepcopy(patch["identity"])
    if "workspaceLinks" in patch:
        service.workspace_links = copy.deepcopy(patch["workspaceLinks"])
    if "configuration" in patch:
        service.configuration = copy.deepcopy(patch["configuration"])
    if "properties" in patch:
        service.properties.update(copy.deepcopy(patch["properties"]))
    if "tags" in patch:
        service.tags.update(copy.deepcopy(patch["tags"]))
    if "location" in patch:
        service.location = str(patch["location"])
    if "diagnosticSettings" in patch:
        service.diagnostic_settings = copy.deepcopy(patch["diagnosticSettings"])
