"""Drift in the service-wide settings: protocols and ciphers, the network mode, public
network access, the managed identity (Key Vault certificates and named values use it),
extra regions, scale and Azure Monitor diagnostic settings. Values that must differ per
service (the subnet of another region, principal ids) are not compared."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.rules.drift.items import DriftItem, item

_GATEWAY = "Microsoft.WindowsAzure.ApiManagement.Gateway."
# Names operators know these settings by, and their values when not set at all.
_LABELS = {
    "Security.Protocols.Tls10": "TLS 1.0",
    "Security.Protocols.Tls11": "TLS 1.1",
    "Security.Protocols.Ssl30": "SSL 3.0",
    "Security.Backend.Protocols.Tls10": "TLS 1.0 to backends",
    "Security.Backend.Protocols.Tls11": "TLS 1.1 to backends",
    "Security.Backend.Protocols.Ssl30": "SSL 3.0 to backends",
    "Protocols.Server.Http2": "HTTP/2",
}


def _label(key: str) -> str:
    short = key.removeprefix(_GATEWAY)
    if short in _LABELS:
        return _LABELS[short]
    if short.startswith("Security.Ciphers."):
        return f"the cipher {short.removeprefix('Security.Ciphers.')}"
    return short


def _default(key: str) -> str:
    """APIM's value for a protocols/ciphers key that is not set: old protocols, HTTP/2 and
    TripleDes168 are off; the other ciphers are on."""
    short = key.removeprefix(_GATEWAY)
    if short.startswith("Security.Ciphers.") and not short.endswith("TripleDes168"):
        return "True"
    return "False"


def custom_property_drift(
    source: Mapping[str, Any], target: Mapping[str, Any], name: str
) -> list[DriftItem]:
    ours: Mapping[str, str] = source.get("customProperties") or {}
    theirs: Mapping[str, str] = target.get("customProperties") or {}
    items: list[DriftItem] = []
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key, _default(key)), theirs.get(key, _default(key))
        if a == b:
            continue
        on_source = "enabled" if a == "True" else "disabled"
        items.append(
            item(
                f"customProperties.{key}",
                a,
                b,
                f"{_label(key)} is {on_source} on the source, not on the target: set it to "
                f"{a} on {name} (Protocols + ciphers).",
            )
        )
    return items


def _identity_types(settings: Mapping[str, Any]) -> set[str]:
    kind = str((settings.get("identity") or {}).get("type") or "None")
    return {part.strip() for part in kind.split(",") if part.strip() and part.strip() != "None"}


def _identity_drift(
    source: Mapping[str, Any], target: Mapping[str, Any], name: str
) -> list[DriftItem]:
    items: list[DriftItem] = []
    ours, theirs = _identity_types(source), _identity_types(target)
    missing = sorted(ours - theirs)
    if missing:
        items.append(
            item(
                "identity.type",
                ", ".join(sorted(ours)) or "None",
                ", ".join(sorted(theirs)) or "None",
                f"{name} has no {' or '.join(missing)} managed identity: enable it and grant it "
                "what the source's has (Key Vault certificates and named values, backends).",
            )
        )
    mine = {i.lower(): i for i in (source.get("identity") or {}).get("userAssignedIdentities", [])}
    yours = {i.lower() for i in (target.get("identity") or {}).get("userAssignedIdentities", [])}
    lacking = sorted(v for k, v in mine.items() if k not in yours)
    if lacking:
        items.append(
            item(
                "identity.userAssignedIdentities",
                ", ".join(lacking),
                ", ".join(sorted(yours)) or None,
                f"Assign these user-assigned identities to {name}: {', '.join(lacking)}.",
            )
        )
    return items


def _locations(settings: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(loc.get("location")).replace(" ", "").lower(): str(loc.get("location"))
        for loc in settings.get("additionalLocations") or []
        if loc.get("location")
    }


def simple_drift(
    source: Mapping[str, Any], target: Mapping[str, Any], name: str
) -> list[DriftItem]:
    items: list[DriftItem] = []
    vnet_a = source.get("virtualNetworkType") or "None"
    vnet_b = target.get("virtualNetworkType") or "None"
    if vnet_a != vnet_b:
        items.append(
            item(
                "virtualNetworkType",
                vnet_a,
                vnet_b,
                f"The source's network mode is {vnet_a}, {name}'s is {vnet_b}: clients and "
                f"backends reachable from the source may not be from {name}; align the mode "
                "(and its subnet, NSG and DNS) before failing over.",
            )
        )
    access_a = source.get("publicNetworkAccess") or "Enabled"
    access_b = target.get("publicNetworkAccess") or "Enabled"
    if access_a != access_b:
        items.append(
            item(
                "publicNetworkAccess",
                access_a,
                access_b,
                f"Public network access is {access_a} on the source, {access_b} on {name}: "
                "set it as on the source.",
            )
        )
    items.extend(_identity_drift(source, target, name))
    ours, theirs = _locations(source), _locations(target)
    if set(ours) != set(theirs):
        add = ", ".join(sorted(ours[k] for k in set(ours) - set(theirs)))
        remove = ", ".join(sorted(theirs[k] for k in set(theirs) - set(ours)))
        steps = [f"add {add}" if add else "", f"remove {remove}" if remove else ""]
        items.append(
            item(
                "additionalLocations",
                ", ".join(sorted(ours.values())) or None,
                ", ".join(sorted(theirs.values())) or None,
                f"{name}'s extra regions are not the source's: "
                f"{' and '.join(s for s in steps if s)} on {name} (Premium) if it is to carry "
                "the same traffic.",
            )
        )
    cap_a = (source.get("sku") or {}).get("capacity")
    cap_b = (target.get("sku") or {}).get("capacity")
    if isinstance(cap_a, int) and isinstance(cap_b, int) and cap_b < cap_a:
        items.append(
            item(
                "sku.capacity",
                cap_a,
                cap_b,
                f"The source runs {cap_a} unit(s), {name} {cap_b}: scale {name} out before it "
                "takes the source's traffic.",
            )
        )
    return items


def _destination(setting: Mapping[str, Any]) -> str:
    for key in ("workspaceId", "storageAccountId", "eventHubAuthorizationRuleId"):
        if setting.get(key):
            return str(setting[key])
    return str(setting.get("marketplacePartnerId") or "an unknown destination")


def diagnostics_drift(
    source: Mapping[str, Any], target: Mapping[str, Any], name: str
) -> list[DriftItem]:
    """Azure Monitor diagnostic settings of the source missing (by name) on the target.
    Unknown on either side (not readable: no Monitoring Reader role) is not drift."""
    ours, theirs = source.get("diagnosticSettings"), target.get("diagnosticSettings")
    if ours is None or theirs is None:
        return []
    present = {str(d.get("name") or "").lower() for d in theirs}
    items: list[DriftItem] = []
    for setting in sorted(ours, key=lambda d: str(d.get("name") or "")):
        label = str(setting.get("name") or "")
        if label.lower() in present:
            continue
        categories = [
            str(entry.get("category") or entry.get("categoryGroup"))
            for entry in setting.get("logs") or []
            if entry.get("enabled")
        ]
        items.append(
            item(
                f"diagnosticSettings[{label}]",
                _destination(setting),
                None,
                f"Azure Monitor diagnostic setting {label} (to {_destination(setting)}, logs: "
                f"{', '.join(categories) or 'none'}) is not on {name}: create it there.",
            )
        )
    return items
