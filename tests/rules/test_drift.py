"""Drift between a source manifest and a restore target (pure, no server)."""

from __future__ import annotations

import copy
import json
from typing import Any

from shared.rules.drift import bounded, compare

GW = "Microsoft.WindowsAzure.ApiManagement.Gateway."
TLS10 = GW + "Security.Protocols.Tls10"
HTTP2 = GW + "Protocols.Server.Http2"
AES = GW + "Security.Ciphers.TLS_RSA_WITH_AES_128_CBC_SHA"
UAI = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id"


def source() -> dict[str, Any]:
    return {
        "sku": {"name": "Premium", "capacity": 2},
        "hostnameConfigurations": [
            {"type": "Proxy", "hostName": "a.azure-api.net", "certificateSource": "BuiltIn"},
            {
                "type": "Proxy",
                "hostName": "api.contoso.com",
                "certificateSource": "KeyVault",
                "keyVaultId": "https://kv.vault.azure.net/secrets/tls",
                "negotiateClientCertificate": False,
                "defaultSslBinding": True,
                "certificate": {"thumbprint": "abc", "expiry": "2027-01-31T00:00:00Z"},
            },
        ],
        "certificates": [
            {"storeName": "Root", "certificate": {"thumbprint": "CA1", "subject": "CN=Root"}}
        ],
        "customProperties": {TLS10: "True", HTTP2: "True"},
        "virtualNetworkType": "External",
        "virtualNetworkConfiguration": {"subnetResourceId": "/source/subnet"},
        "identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": [UAI]},
        "additionalLocations": [{"location": "East US 2"}],
        "publicNetworkAccess": "Enabled",
    }


def matching_target() -> dict[str, Any]:
    target = copy.deepcopy(source())
    # What must differ between two services is not drift: their default hostname, the
    # subnet of their region, and anything extra the target has.
    target["hostnameConfigurations"][0]["hostName"] = "b.azure-api.net"
    target["virtualNetworkConfiguration"] = {"subnetResourceId": "/target/subnet"}
    target["hostnameConfigurations"].append(
        {"type": "Proxy", "hostName": "standby.contoso.com", "certificateSource": "Custom"}
    )
    target["hostnameConfigurations"][1]["certificate"]["thumbprint"] = "ABC"  # case only
    target["customProperties"][AES] = "True"  # explicitly what the default is
    target["sku"]["capacity"] = 3
    return target


def test_a_matching_target_has_no_drift():
    assert compare(source(), matching_target(), "standby") == []


def test_every_meaningful_difference_is_reported_with_an_action():
    target = {
        "sku": {"name": "Premium", "capacity": 1},
        "hostnameConfigurations": [
            {"type": "Proxy", "hostName": "b.azure-api.net", "certificateSource": "BuiltIn"}
        ],
        "customProperties": {},
        "virtualNetworkType": "None",
        "identity": {"type": "SystemAssigned", "userAssignedIdentities": []},
        "publicNetworkAccess": "Disabled",
    }
    drift = compare(source(), target, "standby")
    assert [(d["setting"], d["source"], d["target"]) for d in drift] == [
        ("hostnameConfigurations[Proxy:api.contoso.com]", "api.contoso.com", None),
        ("certificates[CA1]", "CA1", None),
        (f"customProperties.{HTTP2}", "True", "False"),
        (f"customProperties.{TLS10}", "True", "False"),
        ("virtualNetworkType", "External", "None"),
        ("publicNetworkAccess", "Enabled", "Disabled"),
        ("identity.type", "SystemAssigned, UserAssigned", "SystemAssigned"),
        ("identity.userAssignedIdentities", UAI, None),
        ("additionalLocations", "East US 2", None),
        ("sku.capacity", "2", "1"),
    ]
    actions = {d["setting"]: d["action"] for d in drift}
    assert str(actions["hostnameConfigurations[Proxy:api.contoso.com]"]).startswith(
        "Hostname api.contoso.com (Proxy) is not configured on standby"
    )
    assert str(actions[f"customProperties.{TLS10}"]).startswith(
        "TLS 1.0 is enabled on the source, not on the target"
    )
    assert all(d["action"] for d in drift)


def test_a_different_certificate_and_binding_on_a_shared_hostname():
    target = matching_target()
    hostname = target["hostnameConfigurations"][1]
    hostname["certificate"] = {"thumbprint": "def", "expiry": "2026-12-31T00:00:00Z"}
    hostname["negotiateClientCertificate"] = True
    drift = compare(source(), target, "standby")
    assert [(d["setting"], d["source"], d["target"]) for d in drift] == [
        ("hostnameConfigurations[Proxy:api.contoso.com].certificate", "ABC", "DEF"),
        (
            "hostnameConfigurations[Proxy:api.contoso.com].negotiateClientCertificate",
            "False",
            "True",
        ),
    ]
    assert drift[0]["action"] == (
        "The certificate of api.contoso.com on standby (thumbprint DEF, expires 2026-12-31) "
        "is not the source's (thumbprint ABC, expires 2027-01-31): bind the same certificate "
        "on standby."
    )


def test_a_protocol_left_at_its_default_is_not_drift():
    ours = {"customProperties": {TLS10: "False", AES: "True"}}
    assert compare(ours, {"customProperties": {}}, "t") == []
    assert [d["setting"] for d in compare(ours, {"customProperties": {AES: "False"}}, "t")] == [
        f"customProperties.{AES}"
    ]


def test_bounded_cuts_a_long_list_and_says_so():
    items = [
        {"setting": f"s{i}", "source": "x" * 300, "target": None, "action": "y" * 300}
        for i in range(200)
    ]
    cut = bounded(items, max_chars=10_000)
    assert len(json.dumps(cut)) <= 10_000
    assert cut[:-1] == items[: len(cut) - 1]
    assert cut[-1]["setting"] == "drift"
    assert f"{200 - (len(cut) - 1)} more difference(s)" in str(cut[-1]["action"])
    assert bounded(items[:3]) == items[:3]


def test_diagnostic_settings_missing_on_the_target_and_unknown_sides():
    ours = {
        "diagnosticSettings": [
            {"name": "to-law", "workspaceId": "/w/law", "logs": [{"category": "GatewayLogs",
             "enabled": True}, {"category": "WebSocketConnectionLogs", "enabled": False}]},
            {"name": "to-hub", "eventHubAuthorizationRuleId": "/eh/rule"},
        ]
    }  # fmt: skip
    theirs = {"diagnosticSettings": [{"name": "TO-HUB", "storageAccountId": "/s/other"}]}
    assert compare(ours, theirs, "standby") == [
        {
            "setting": "diagnosticSettings[to-law]",
            "source": "/w/law",
            "target": None,
            "action": "Azure Monitor diagnostic setting to-law (to /w/law, logs: GatewayLogs) "
            "is not on standby: create it there.",
        }
    ]
    # Not readable on one side (no Monitoring Reader): nothing to say.
    assert compare(ours, {"diagnosticSettings": None}, "standby") == []
    assert compare({"diagnosticSettings": None}, theirs, "standby") == []


def test_a_missing_hostname_says_where_its_certificate_comes_from():
    hostnames = [
        {"type": "Proxy", "hostName": "kv.contoso.com", "keyVaultId": "https://kv/secrets/t"},
        {"type": "Proxy", "hostName": "up.contoso.com", "certificateSource": "Custom",
         "certificate": {"thumbprint": "ab12"}},
        {"type": "Proxy", "hostName": "free.contoso.com", "certificateSource": "Managed"},
    ]  # fmt: skip
    actions = [d["action"] for d in compare({"hostnameConfigurations": hostnames}, {}, "sb")]
    assert actions == [
        "Hostname free.contoso.com (Proxy) is not configured on sb: add it with a managed "
        "certificate as you move its DNS to sb (APIM issues one only once the hostname "
        "resolves to the service), or bind your own before.",
        "Hostname kv.contoso.com (Proxy) is not configured on sb: add it with the certificate "
        "from https://kv/secrets/t before moving DNS to sb.",
        "Hostname up.contoso.com (Proxy) is not configured on sb: add it with the certificate "
        "with thumbprint AB12 (uploaded to the source) before moving DNS to sb.",
    ]


def test_regions_drift_names_the_regions_to_add_and_to_remove():
    ours = {"additionalLocations": [{"location": "East US 2"}, {"location": "West US"}]}
    theirs = {"additionalLocations": [{"location": "eastus2"}, {"location": "North Europe"}]}
    (item,) = compare(ours, theirs, "sb")
    assert item["action"] == (
        "sb's extra regions are not the source's: add West US and remove North Europe on sb "
        "(Premium) if it is to carry the same traffic."
    )
    same = {"additionalLocations": [{"location": "westus"}, {"location": "eastus2"}]}
    assert compare(ours, same, "sb") == []  # names compare as ARM's location keys
