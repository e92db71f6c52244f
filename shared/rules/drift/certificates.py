"""Drift in custom hostnames and certificates: the hostnames clients call (and the
certificate each is served with) and the CA certificates the gateway trusts. A missing
one is the drift that breaks clients at a failover; each action says how to add it by
where its certificate comes from. The default ``*.azure-api.net`` hostnames differ per
service and are not drift."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.rules.drift.items import DriftItem, item
from shared.rules.manifest import parse_time

_DEFAULT_DOMAINS = (".azure-api.net", ".azure-api.cn", ".azure-api.us", ".azure-api.de")


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


def hostname_drift(
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
                item(
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
                item(
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
                    item(
                        f"{setting}.{field}",
                        a,
                        b,
                        f"{field} of {host} is {a} on the source, {b} on {name}: set it to "
                        f"{a} on {name}.",
                    )
                )
    return items


def ca_drift(source: Mapping[str, Any], target: Mapping[str, Any], name: str) -> list[DriftItem]:
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
            item(
                f"certificates[{thumbprint}]",
                thumbprint,
                None,
                f"CA certificate {cert.get('subject') or thumbprint} (store {store}, expires "
                f"{_expiry(cert)}) is not on {name}: upload it there.",
            )
        )
    return items
