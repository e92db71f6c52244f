"""The manifest's allow-list and certificate metadata (pure, no server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.rules.manifest import (
    backup_of_manifest,
    certificates,
    custom_properties,
    diagnostic_settings,
    expiring_certificates,
    manifest_blob_name,
    parse_time,
    service_settings,
)

SECRET = "MIIKcQIBAzCCCi0GCSqGSIb3DQEHAaCCCh4EggoaMIIKFjCCBg8GCSqGSIb3DQEHAaCCBgAEggX8"
PASSWORD = "Pa55w0rd-do-not-leak"
TLS10 = "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Tls10"
UAI = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id"


def hostile_resource() -> dict[str, Any]:
    """A service GET as a careless (or future) Resource Manager might answer it."""
    return {
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/a",
        "location": "West Europe",
        "sku": {"name": "Premium", "capacity": 2, "secretKey": SECRET},
        "identity": {
            "type": "SystemAssigned, UserAssigned",
            "principalId": "p-1",
            "tenantId": "t-1",
            "clientSecret": PASSWORD,
            "userAssignedIdentities": {UAI: {"principalId": "p-2", "clientId": "c-2"}},
        },
        "properties": {
            "hostnameConfigurations": [
                {
                    "type": "Proxy",
                    "hostName": "api.contoso.com",
                    "certificateSource": "KeyVault",
                    "keyVaultId": "https://kv.vault.azure.net/secrets/tls",
                    "negotiateClientCertificate": False,
                    "defaultSslBinding": True,
                    "encodedCertificate": SECRET,
                    "certificatePassword": PASSWORD,
                    "privateKey": SECRET,
                    "certificate": {
                        "expiry": "2027-01-31T00:00:00Z",
                        "thumbprint": "ABC123",
                        "subject": "CN=api.contoso.com",
                        "encodedCertificate": SECRET,
                        "password": PASSWORD,
                    },
                },
                # a field that is on the list, but holding an object: dropped, not copied
                {"type": "Proxy", "hostName": {"value": SECRET}, "certificateSource": "Custom"},
            ],
            "certificates": [
                {
                    "storeName": "Root",
                    "encodedCertificate": SECRET,
                    "certificatePassword": PASSWORD,
                    "certificate": {"expiry": "2030-01-01T00:00:00Z", "thumbprint": "CA1"},
                }
            ],
            "customProperties": {
                TLS10: "True",
                "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Ciphers.TripleDes168": False,
                "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Weird": SECRET,
                "SomeOther.ConnectionString": f"AccountKey={SECRET}",
            },
            "virtualNetworkType": "External",
            "virtualNetworkConfiguration": {"subnetResourceId": "/sub/net", "sasToken": SECRET},
            "additionalLocations": [
                {"location": "East US 2", "sku": {"name": "Premium", "capacity": 1}, "x": SECRET}
            ],
            "publicNetworkAccess": "Enabled",
            "gatewayUrl": "https://a.azure-api.net",
            "tenantAccessKey": SECRET,
            "futureField": {"apiKey": SECRET},
        },
    }


def test_the_allow_list_copies_the_settings_and_no_secret():
    settings = service_settings(hostile_resource())
    text = json.dumps(settings)
    for secret in (SECRET, PASSWORD, "encodedCertificate", "Password", "privateKey", "p-1"):
        assert secret not in text
    assert settings["hostnameConfigurations"] == [
        {
            "type": "Proxy",
            "hostName": "api.contoso.com",
            "certificateSource": "KeyVault",
            "keyVaultId": "https://kv.vault.azure.net/secrets/tls",
            "negotiateClientCertificate": False,
            "defaultSslBinding": True,
            "certificate": {
                "expiry": "2027-01-31T00:00:00Z",
                "thumbprint": "ABC123",
                "subject": "CN=api.contoso.com",
            },
        },
        {"type": "Proxy", "certificateSource": "Custom"},
    ]
    assert settings["certificates"] == [
        {
            "storeName": "Root",
            "certificate": {"expiry": "2030-01-01T00:00:00Z", "thumbprint": "CA1"},
        }
    ]
    assert settings["customProperties"] == {
        "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Ciphers.TripleDes168": "False",
        TLS10: "True",
    }
    assert settings["identity"] == {
        "type": "SystemAssigned, UserAssigned",
        "userAssignedIdentities": [UAI],
    }
    assert settings["virtualNetworkConfiguration"] == {"subnetResourceId": "/sub/net"}
    assert settings["additionalLocations"] == [
        {"location": "East US 2", "sku": {"name": "Premium", "capacity": 1}}
    ]
    assert settings["sku"] == {"name": "Premium", "capacity": 2}
    assert "gatewayUrl" not in settings and "futureField" not in settings


def test_a_value_too_long_to_be_a_setting_is_dropped():
    resource = {"properties": {"publicNetworkAccess": "x" * 5000, "virtualNetworkType": "None"}}
    assert service_settings(resource) == {
        "virtualNetworkType": "None",
        "customProperties": {},
        "identity": None,
    }


def test_an_answer_that_is_not_an_object_gives_empty_settings():
    settings = service_settings({"properties": ["not", "an", "object"], "identity": "x"})
    assert settings == {"customProperties": {}, "identity": None}


def test_custom_properties_keep_true_and_false_protocol_keys_only():
    assert custom_properties({TLS10: "true", "Other": "True", TLS10 + "x": "maybe"}) == {
        TLS10: "True"
    }
    assert custom_properties(None) == {}


def test_manifest_names():
    name = "contoso-apim-20261127T020000Z.apimbackup"
    assert manifest_blob_name(name) == f"{name}.manifest.json"
    assert backup_of_manifest(manifest_blob_name(name)) == name
    assert backup_of_manifest(name) is None


def test_parse_time_accepts_arm_forms():
    expected = datetime(2027, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)
    assert parse_time("2027-01-31T12:00:00.1234567Z") == expected
    assert parse_time("2027-01-31T12:00:00.123456+00:00") == expected
    assert parse_time("2027-01-31T13:00:00+01:00") == expected.replace(microsecond=0)
    assert parse_time("2027-01-31") is None  # no zone: not guessed
    assert parse_time("soon") is None


def test_certificates_lists_hostname_and_ca_certificates():
    found = certificates(service_settings(hostile_resource()))
    assert found == [
        {
            "hostName": "api.contoso.com",
            "thumbprint": "ABC123",
            "subject": "CN=api.contoso.com",
            "expiresAt": "2027-01-31T00:00:00Z",
        },
        {
            "hostName": None,
            "thumbprint": "CA1",
            "subject": None,
            "expiresAt": "2030-01-01T00:00:00Z",
        },
    ]


def test_expiring_certificates_warns_within_the_window_only():
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def cert(host: str, days: float) -> dict[str, Any]:
        moment = now + timedelta(days=days)
        return {"hostName": host, "thumbprint": host.upper(), "subject": f"CN={host}",
                "expiresAt": moment.isoformat()}  # fmt: skip

    certs = [cert("late.example", 90), cert("soon.example", 9.5), cert("gone.example", -1),
             cert("edge.example", 30), {"hostName": "x", "expiresAt": None}]  # fmt: skip
    warnings = expiring_certificates("contoso-apim", certs, now, 30)
    assert [(w["hostName"], w["daysLeft"]) for w in warnings] == [
        ("gone.example", -1),
        ("soon.example", 9),
        ("edge.example", 30),
    ]
    assert warnings[1] == {
        "service": "contoso-apim",
        "hostName": "soon.example",
        "thumbprint": "SOON.EXAMPLE",
        "subject": "CN=soon.example",
        "expiresAt": "2026-12-09T00:00:00Z",
        "daysLeft": 9,
    }


def test_diagnostic_settings_keep_destinations_and_categories_only():
    answer = {
        "value": [
            {
                "id": "/x/providers/microsoft.insights/diagnosticSettings/to-law",
                "name": "to-law",
                "properties": {
                    "workspaceId": "/w/law",
                    "eventHubAuthorizationRuleId": "/eh/rule",
                    "eventHubConnectionString": f"Endpoint=sb://x;SharedAccessKey={SECRET}",
                    "storageAccountSasToken": SECRET,
                    "logs": [{"category": "GatewayLogs", "enabled": True, "key": SECRET}],
                    "metrics": [{"category": "AllMetrics", "enabled": False}],
                },
            },
            "not an object",
        ]
    }
    found = diagnostic_settings(answer)
    assert SECRET not in json.dumps(found)
    assert found == [
        {
            "name": "to-law",
            "workspaceId": "/w/law",
            "eventHubAuthorizationRuleId": "/eh/rule",
            "logs": [{"category": "GatewayLogs", "enabled": True}],
            "metrics": [{"category": "AllMetrics", "enabled": False}],
        }
    ]
    assert diagnostic_settings({"value": "nope"}) == [] and diagnostic_settings(None) == []


def test_the_ledger_copy_of_the_certificates_fits_one_table_property():
    long = "x" * 2000
    hostnames = [
        {"hostName": f"{i}{long}", "certificate": {"thumbprint": long, "subject": long,
         "expiry": "2027-01-01T00:00:00Z"}}
        for i in range(200)
    ]  # fmt: skip
    found = certificates({"hostnameConfigurations": hostnames})
    assert len(found) == 30
    assert len(json.dumps(found)) < 32_000
    # json.dumps writes a non-ASCII character as six: such subjects are cut by count.
    wide = [
        {"hostName": f"{i}{long}", "certificate": {"thumbprint": long,
         "subject": "CN=" + "\u00fc" * 2000, "expiry": "2027-01-01T00:00:00Z"}}
        for i in range(200)
    ]  # fmt: skip
    found = certificates({"hostnameConfigurations": wide})
    assert 10 < len(found) < 30
    assert len(json.dumps(found)) <= 30_000
    assert found == certificates({"hostnameConfigurations": wide[: len(found)]})


def test_ledger_and_operation_rows_carry_the_new_columns():
    from shared.rules.model import (
        BackupRecord,
        OperationKind,
        OperationRecord,
        Status,
        Trigger,
    )

    now = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    cert = {"hostName": "a", "thumbprint": "T", "subject": "CN=a", "expiresAt": "2027-01-01Z"}
    record = BackupRecord(
        service="a", backup_name="a-20261129T020000Z.apimbackup", service_id="/id",
        storage_account="acct", container="c", status=Status.RUNNING, trigger=Trigger.CLI,
        created_at=now, sku="Developer",
        manifest_blob="a-20261129T020000Z.apimbackup.manifest.json", certificates=(cert,),
    )  # fmt: skip
    entity = record.to_entity()
    assert entity["ManifestBlob"] == record.manifest_blob and "ManifestError" not in entity
    assert BackupRecord.from_entity(entity) == record
    assert record.to_api(now)["manifestBlob"] == record.manifest_blob
    failed = record.with_changes(manifest_blob=None, manifest_error="why", certificates=())
    assert BackupRecord.from_entity(failed.to_entity()) == failed

    drift = ({"setting": "s", "source": "1", "target": None, "action": "do"},)
    operation = OperationRecord(
        operation_id="0" * 32, kind=OperationKind.RESTORE, service="b", service_id="/b",
        backup_name=record.backup_name, status=Status.RUNNING, trigger=Trigger.HTTP,
        created_at=now, source_service="a",
    )  # fmt: skip
    assert "drift" not in operation.to_api("u")  # not while running
    done = operation.with_changes(status=Status.SUCCEEDED, drift=drift)
    assert OperationRecord.from_entity(done.to_entity()) == done
    assert done.to_api("u")["drift"] == list(drift) and done.to_api("u")["driftError"] is None
    unknown = operation.with_changes(status=Status.SUCCEEDED, drift_error="no manifest")
    assert OperationRecord.from_entity(unknown.to_entity()).drift is None
    assert unknown.to_api("u")["drift"] is None
