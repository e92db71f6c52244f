"""The settings manifest: what APIM's backup leaves out, copied from Resource Manager by
an allow-list.

APIM's backup carries the service's configuration (APIs, products, users...) but not
its custom domains and their certificates, CA certificates, network, managed identity,
protocol and cipher settings, or extra regions. A restore into a standby does not bring
them either. So at each backup the product copies them, from the service GET it makes
anyway for the pre-checks, into ``<backupName>.manifest.json`` beside the backup.

Only fields named here are copied, and only as plain values: a private key, a password
or an encoded certificate never reaches the manifest, whatever Resource Manager (or a
future API version) puts next to them. Pure functions: no I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from shared.rules.model import iso, utc

MANIFEST_FORMAT = "apim-backup-manifest/1"
MANIFEST_SUFFIX = ".manifest.json"
# The ledger keeps a copy of the certificate metadata, so that health needs no blob read:
# bounded so that it always fits one table property (32K characters).
MAX_CERTIFICATES = 30
MAX_CERTIFICATE_FIELD = 256
# The column is json.dumps'ed, which writes a non-ASCII character as six (\uXXXX): 30
# subjects in another script could otherwise reach 64K and fail the ledger row's write.
MAX_CERTIFICATES_JSON = 30_000
MAX_STRING = 2048  # a longer "value" is not a setting but data: it is dropped
MAX_ITEMS = 100
_FRACTION = re.compile(r"\.(\d+)")  # fromisoformat takes at most six fractional digits

# The spec of what is copied. A ``None`` leaf is a scalar (str, bool, int, float); a
# dict is an object copied by its own spec; a one-element list is a list of that spec.
# Anything else in the input (another key, an object where a scalar is expected) is left.
Spec = Mapping[str, Any]
SCALAR = None

_CERTIFICATE_INFO: Spec = {"subject": SCALAR, "thumbprint": SCALAR, "expiry": SCALAR}
_HOSTNAME: Spec = {
    "type": SCALAR,
    "hostName": SCALAR,
    "certificateSource": SCALAR,
    "certificateStatus": SCALAR,
    "keyVaultId": SCALAR,  # the secret's URL in Key Vault, not the secret
    "identityClientId": SCALAR,
    "negotiateClientCertificate": SCALAR,
    "defaultSslBinding": SCALAR,
    "certificate": _CERTIFICATE_INFO,
}
_CA_CERTIFICATE: Spec = {"storeName": SCALAR, "certificate": _CERTIFICATE_INFO}
_SUBNET: Spec = {"subnetResourceId": SCALAR, "vnetid": SCALAR, "subnetname": SCALAR}
_LOCATION: Spec = {
    "location": SCALAR,
    "sku": {"name": SCALAR, "capacity": SCALAR},
    "zones": [SCALAR],
    "virtualNetworkConfiguration": _SUBNET,
    "publicIpAddressId": SCALAR,
    "disableGateway": SCALAR,
    "natGatewayState": SCALAR,
    "platformVersion": SCALAR,
}
_PROPERTIES: Spec = {
    "hostnameConfigurations": [_HOSTNAME],
    "certificates": [_CA_CERTIFICATE],  # CA certificates (stores Root and CertificateAuthority)
    "virtualNetworkType": SCALAR,
    "virtualNetworkConfiguration": _SUBNET,
    "additionalLocations": [_LOCATION],
    "publicNetworkAccess": SCALAR,
    "publicIpAddressId": SCALAR,
    "disableGateway": SCALAR,
    "natGatewayState": SCALAR,
    "platformVersion": SCALAR,
    "enableClientCertificate": SCALAR,
    "apiVersionConstraint": {"minApiVersion": SCALAR},
    "developerPortalStatus": SCALAR,
    "legacyPortalStatus": SCALAR,
}
_RESOURCE: Spec = {
    "location": SCALAR,
    "sku": {"name": SCALAR, "capacity": SCALAR},
    "zones": [SCALAR],
}

# Azure Monitor diagnostic settings of the service (Microsoft.Insights/diagnosticSettings).
_DIAGNOSTIC_SETTING: Spec = {
    "workspaceId": SCALAR,
    "storageAccountId": SCALAR,
    "eventHubAuthorizationRuleId": SCALAR,  # the rule's resource id, not its keys
    "eventHubName": SCALAR,
    "marketplacePartnerId": SCALAR,
    "logAnalyticsDestinationType": SCALAR,
    "logs": [{"category": SCALAR, "categoryGroup": SCALAR, "enabled": SCALAR}],
    "metrics": [{"category": SCALAR, "enabled": SCALAR}],
}

# Protocols and ciphers: ARM's customProperties keys under these prefixes, true/false only.
CUSTOM_PROPERTY_PREFIXES = (
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Ciphers.",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Protocols.Server.",
)


def manifest_blob_name(backup_name: str) -> str:
    return f"{backup_name}{MANIFEST_SUFFIX}"


def backup_of_manifest(blob_name: str) -> str | None:
    """The backup a manifest blob belongs to, or None for any other blob."""
    if blob_name.endswith(MANIFEST_SUFFIX):
        return blob_name.removesuffix(MANIFEST_SUFFIX) or None
    return None


def _scalar(value: Any) -> Any:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and len(value) <= MAX_STRING:
        return value
    raise _Dropped


class _Dropped(Exception):
    """A value that is not of the allowed kind: left out, not copied in some other form."""


def _pick(value: Any, spec: Any) -> Any:
    if spec is SCALAR:
        return _scalar(value)
    if isinstance(spec, list):
        if not isinstance(value, list):
            raise _Dropped
        items = []
        for item in value[:MAX_ITEMS]:
            try:
                items.append(_pick(item, spec[0]))
            except _Dropped:
                continue
        return items
    if not isinstance(value, Mapping):
        raise _Dropped
    picked: dict[str, Any] = {}
    for key, sub in spec.items():
        if key in value and value[key] is not None:
            try:
                picked[key] = _pick(value[key], sub)
            except _Dropped:
                continue
    return picked


def _copy(value: Any, spec: Spec) -> dict[str, Any]:
    try:
        result: dict[str, Any] = _pick(value, spec)
    except _Dropped:
        return {}
    return result


def custom_properties(raw: Any) -> dict[str, str]:
    """Protocols and ciphers settings, as ``"True"``/``"False"``; nothing else."""
    if not isinstance(raw, Mapping):
        return {}
    kept: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key.startswith(CUSTOM_PROPERTY_PREFIXES):
            continue
        text = str(value).strip().lower() if isinstance(value, str | bool) else ""
        if text in ("true", "false"):
            kept[key] = "True" if text == "true" else "False"
    return dict(sorted(kept.items()))


def identity_settings(raw: Any) -> dict[str, Any] | None:
    """The identity's type and its user-assigned identities' resource ids (no principals)."""
    if not isinstance(raw, Mapping):
        return None
    kind = raw.get("type")
    users = raw.get("userAssignedIdentities")
    ids = sorted(k for k in users if isinstance(k, str)) if isinstance(users, Mapping) else []
    return {
        "type": kind if isinstance(kind, str) and len(kind) <= 100 else None,
        "userAssignedIdentities": ids[:MAX_ITEMS],
    }


def service_settings(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a backup omits, from the JSON of ``GET .../service/{name}``."""
    settings = _copy(resource, _RESOURCE)
    properties = resource.get("properties")
    settings.update(_copy(properties, _PROPERTIES))
    raw_custom = properties.get("customProperties") if isinstance(properties, Mapping) else None
    settings["customProperties"] = custom_properties(raw_custom)
    settings["identity"] = identity_settings(resource.get("identity"))
    return settings


def diagnostic_settings(answer: Any) -> list[dict[str, Any]]:
    """The service's Azure Monitor diagnostic settings, from the JSON of
    ``GET {service}/providers/Microsoft.Insights/diagnosticSettings``."""
    items = answer.get("value") if isinstance(answer, Mapping) else None
    found: list[dict[str, Any]] = []
    for item in items[:MAX_ITEMS] if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        name = item.get("name")
        setting = {"name": name if isinstance(name, str) and len(name) <= 260 else None}
        setting.update(_copy(item.get("properties"), _DIAGNOSTIC_SETTING))
        found.append(setting)
    return found


def manifest_document(
    backup_name: str,
    service_id: str,
    captured_at: datetime,
    settings: Mapping[str, Any],
    unavailable: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The manifest blob's content. ``unavailable`` names the parts that could not be
    read (their setting is null) and why."""
    return {
        "format": MANIFEST_FORMAT,
        "backupName": backup_name,
        "serviceId": service_id,
        "capturedAt": iso(captured_at),
        "settings": dict(settings),
        "unavailable": dict(unavailable or {}),
    }


def parse_time(text: Any) -> datetime | None:
    """An ARM timestamp (``...Z``, an offset, or .NET's seven fractional digits)."""
    if not isinstance(text, str) or not text:
        return None
    value = _FRACTION.sub(
        lambda m: "." + m[1][:6].ljust(6, "0"), text.strip().replace("Z", "+00:00")
    )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return utc(moment) if moment.tzinfo else None


def certificates(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every certificate the settings name, with what health needs: host name (None for a
    CA certificate), thumbprint, subject and expiry. At most MAX_CERTIFICATES, and no more
    than fit MAX_CERTIFICATES_JSON characters of JSON (the ledger's copy)."""
    found: list[dict[str, Any]] = []
    for hostname in settings.get("hostnameConfigurations") or []:
        cert = hostname.get("certificate") or {}
        if cert.get("expiry") or cert.get("thumbprint"):
            found.append(_certificate(hostname.get("hostName"), cert))
    for ca in settings.get("certificates") or []:
        cert = ca.get("certificate") or {}
        if cert.get("expiry") or cert.get("thumbprint"):
            found.append(_certificate(None, cert))
    kept, size = [], 2
    for item in found[:MAX_CERTIFICATES]:
        size += len(json.dumps(item)) + 2
        if size > MAX_CERTIFICATES_JSON:
            break
        kept.append(item)
    return kept


def _certificate(host_name: Any, cert: Mapping[str, Any]) -> dict[str, Any]:
    def short(value: Any) -> str | None:
        return None if value is None else str(value)[:MAX_CERTIFICATE_FIELD]

    expiry = parse_time(cert.get("expiry"))
    return {
        "hostName": short(host_name),
        "thumbprint": short(cert.get("thumbprint")),
        "subject": short(cert.get("subject")),
        "expiresAt": iso(expiry) if expiry else None,
    }


def expiring_certificates(
    service: str, certs: Iterable[Mapping[str, Any]], now: datetime, warning_days: int
) -> list[dict[str, Any]]:
    """The certificates that expire within ``warning_days`` of ``now`` (or have expired)."""
    warnings: list[dict[str, Any]] = []
    for cert in certs:
        expiry = parse_time(cert.get("expiresAt"))
        if expiry is None:
            continue
        left = expiry - utc(now)
        if left <= timedelta(days=warning_days):
            days_left = math.floor(left.total_seconds() / 86400)
            warnings.append(
                {
                    "service": service,
                    "hostName": cert.get("hostName"),
                    "thumbprint": cert.get("thumbprint"),
                    "subject": cert.get("subject"),
                    "expiresAt": iso(expiry),
                    "daysLeft": days_left,
                }
            )
    return sorted(warnings, key=lambda w: (w["expiresAt"], str(w["hostName"])))


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
