"""Drift after a restore: how the target's settings differ from the source backup's
manifest, and what an operator should do about each difference.

A restore brings back APIM's configuration, not the settings in the manifest, so a
standby that is to take over must already have them. Only differences that change
what clients or backends experience are reported: custom hostnames and their
certificates, CA certificates, protocols and ciphers, the network mode, public network
access, the managed identity (Key Vault certificates and named values use it), extra
regions and scale. Per-service values that must differ (the default
``*.azure-api.net`` hostnames, the subnet of another region, principal ids) are not.
Extra settings on the target are not drift either: the target may have more.

:func:`compare` is pure (the ``settings`` of two manifests, shared.rules.manifest);
:func:`restore_drift` reads the two sides: the backup's manifest blob and one GET of
the target.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared.rules.errors import ProductError
from shared.rules.manifest import parse_time
from shared.rules.naming import ServiceId, parse_backup_name

if TYPE_CHECKING:
    from shared.rules.model import OperationRecord
    from shared.runtime import Runtime

log = logging.getLogger(__name__)

DriftItem = dict[str, str | None]

# A restore's drift lives on its operation row: one Table Storage string property
# (at most 32K characters). A longer list is cut, and says so.
MAX_DRIFT_CHARS = 30_000
MAX_FIELD_CHARS = 400

_DEFAULT_DOMAINS = (".azure-api.net", ".azure-api.cn", ".azure-api.us", ".azure-api.de")
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


def _item(setting: str, source: Any, target: Any, action: str) -> DriftItem:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)[:MAX_FIELD_CHARS]

    return {
        "setting": setting[:MAX_FIELD_CHARS],
        "source": text(source),
        "target": text(target),
        "action": action[:MAX_FIELD_CHARS],
    }


def _is_default_domain(hostname: Mapping[str, Any]) -> bool:
    name = str(hostname.get("hostName") or "").lower()
    return hostname.get("certificateSource") == "BuiltIn" or name.endswith(_DEFAULT_DOMAINS)


def _hostnames(settings: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    found: dict[tuple[str, str], Mapping[str, Any]] = {}
    for hostname in settings.get("hostnameConfigurations") or []:
        if not hostname.get("hostName") or _is_default_domain(hostname):
            continue
        found[(str(hostname.get("type") or "Proxy"), str(hostname["hostName"]).lower())] = hostname
    return found


def _thumbprint(hostname: Mapping[str, Any]) -> str | None:
    value = (hostname.get("certificate") or {}).get("thumbprint")
    return str(value).upper() if value else None


def _expiry(cert: Mapping[str, Any]) -> str:
    moment = parse_time(cert.get("expiry"))
    return f"{moment:%Y-%m-%d}" if moment else "an unknown date"


def _add_hostname(hostname: Mapping[str, Any], name: str) -> str:
    """How to add a missing hostname, by where its certificate comes from."""
    if hostname.get("keyVaultId"):
        return (
            f"add it with the certificate from {hostname['keyVaultId']} before moving DNS "
            f"to {name}."
        )
    if hostname.get("certificateSource") == "Managed":
        # APIM issues a managed certificate only once the hostname's DNS points at it.
        return (
            f"add it with a managed certificate as you move its DNS to {name} (APIM issues "
            "one only once the hostname resolves to the service), or bind your own before."
        )
    thumbprint = _thumbprint(hostname)
    which = f"the certificate with thumbprint {thumbprint}" if thumbprint else "its certificate"
    return f"add it with {which} (uploaded to the source) before moving DNS to {name}."


def _hostname_drift(
    source: Mapping[str, Any], target: Mapping[str, Any], name: str
) -> list[DriftItem]:
    items: list[DriftItem] = []
    theirs = _hostnames(target)
    for key, ours in sorted(_hostnames(source).items()):
        kind, host = key
        setting = f"hostnameConfigurations[{kind}:{host}]"
        other = theirs.get(key)
        if other is None:
            items.append(
                _item(
                    setting,
                    host,
                    None,
                    f"Hostname {host} ({kind}) is not configured on {name}: "
                    + _add_hostname(ours, name),
                )
            )
            continue
        mine, yours = _thumbprint(ours), _thumbprint(other)
        if mine and mine != yours:
            theirs_now = f"thumbprint {yours}, expires {_expiry(other.get('certificate') or {})}"
            items.append(
                _item(
                    f"{setting}.certificate",
                    mine,
                    yours,
                    f"The certificate of {host} on {name} ({theirs_now if yours else 'none'}) "
                    f"is not the source's (thumbprint {mine}, expires "
                    f"{_expiry(ours.get('certificate') or {})}): bind the same certificate "
                    f"on {name}.",
                )
            )
        for field in ("negotiateClientCertificate", "defaultSslBinding"):
            a, b = bool(ours.get(field)), bool(other.get(field))
            if a != b:
                items.append(
                    _item(
                        f"{setting}.{field}",
                        a,
                        b,
                        f"{field} of {host} is {a} on the source, {b} on {name}: set it to "
                        f"{a} on {name}.",
                    )
                )
    return items


def _ca_drift(source: Mapping[str, Any], target: Mapping[str, Any], name: str) -> list[DriftItem]:
    def by_thumbprint(settings: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        for ca in settings.get("certificates") or []:
            thumbprint = (ca.get("certificate") or {}).get("thumbprint")
            if thumbprint:
                found[str(thumbprint).upper()] = ca
        return found

    theirs = by_thumbprint(target)
    items: list[DriftItem] = []
    for thumbprint, ca in sorted(by_thumbprint(source).items()):
        if thumbprint in theirs:
            continue
        cert = ca.get("certificate") or {}
        store = ca.get("storeName") or "Root"
        items.append(
            _item(
                f"certificates[{thumbprint}]",
                thumbprint,
                None,
                f"CA certificate {cert.get('subject') or thumbprint} (store {store}, expires "
                f"{_expiry(cert)}) is not on {name}: upload it there.",
            )
        )
    return items


def _custom_property_drift(
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
            _item(
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
            _item(
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
            _item(
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


def _simple_drift(
    source: Mapping[str, Any], target: Mapping[str, Any], name: str
) -> list[DriftItem]:
    items: list[DriftItem] = []
    vnet_a = source.get("virtualNetworkType") or "None"
    vnet_b = target.get("virtualNetworkType") or "None"
    if vnet_a != vnet_b:
        items.append(
            _item(
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
            _item(
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
            _item(
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
            _item(
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


def _diagnostics_drift(
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
            _item(
                f"diagnosticSettings[{label}]",
                _destination(setting),
                None,
                f"Azure Monitor diagnostic setting {label} (to {_destination(setting)}, logs: "
                f"{', '.join(categories) or 'none'}) is not on {name}: create it there.",
            )
        )
    return items


def compare(
    source: Mapping[str, Any], target: Mapping[str, Any], target_name: str
) -> list[DriftItem]:
    """The differences that matter between a source manifest's settings and the target's
    current ones, in a fixed order; empty when the target matches."""
    return [
        *_hostname_drift(source, target, target_name),
        *_ca_drift(source, target, target_name),
        *_custom_property_drift(source, target, target_name),
        *_simple_drift(source, target, target_name),
        *_diagnostics_drift(source, target, target_name),
    ]


def bounded(items: Sequence[DriftItem], max_chars: int = MAX_DRIFT_CHARS) -> list[DriftItem]:
    """``items``, cut so that their JSON fits one table property; a cut list ends with an
    item saying how many differences were left out."""
    kept = list(items)
    if len(json.dumps(kept)) <= max_chars:
        return kept
    while kept:
        kept.pop()
        note = _item(
            "drift",
            None,
            None,
            f"{len(items) - len(kept)} more difference(s) not shown: compare the manifest "
            "with the target.",
        )
        if len(json.dumps([*kept, note])) <= max_chars:
            return [*kept, note]
    return []


def restore_drift(runtime: Runtime, operation: OperationRecord) -> OperationRecord:
    """A succeeded restore with its drift (or why there is none) noted. Never raises: the
    restore has succeeded whatever this finds."""
    try:
        source_key = operation.source_service or parse_backup_name(operation.backup_name).service
        record = runtime.ledger.get(source_key, operation.backup_name)
        if record is None or not record.manifest_blob:
            why = (record.manifest_error if record else None) or "it has no manifest"
            return operation.with_changes(
                drift=None, drift_error=f"No drift computed: backup {operation.backup_name}: {why}"
            )
        document = runtime.blobs.read_json(record.manifest_blob)
        source = document.get("settings") if isinstance(document, dict) else None
        if not isinstance(source, dict):
            return operation.with_changes(
                drift=None, drift_error=f"No drift computed: {record.manifest_blob} is missing"
            )
        target = ServiceId.parse(operation.service_id)
        current = runtime.apim.settings_of(target)
        current["diagnosticSettings"] = runtime.apim.try_diagnostic_settings(target)[0]
        found = bounded(compare(source, current, target.name))
    except ProductError as exc:  # Resource Manager refused or could not be reached
        return operation.with_changes(
            drift=None, drift_error=f"No drift computed: {exc.message}"[:MAX_FIELD_CHARS]
        )
    except Exception as exc:
        log.warning(
            "Drift of restore %s not computed: %s", operation.operation_id, type(exc).__name__
        )
        return operation.with_changes(
            drift=None, drift_error=f"No drift computed: {type(exc).__name__}"
        )
    if found:
        log.warning(
            "Restore of %s into %s (%s): %d setting(s) differ from the source: %s",
            operation.backup_name,
            operation.service,
            operation.trigger.value,
            len(found),
            "; ".join(str(item["action"]) for item in found),
        )
    else:
        log.info(
            "Restore of %s into %s: the target's settings match the source's manifest",
            operation.backup_name,
            operation.service,
        )
    return operation.with_changes(drift=tuple(found), drift_error=None)
