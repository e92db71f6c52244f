"""The settings APIM's backup omits, as the emulator serves them: hostname certificates, CA
certificates, protocols, identity, diagnostic settings; and a restore leaves them alone."""

from __future__ import annotations

import pytest

from devstack.stack import LocalStack
from tests.emulator import RG, arm_get, make_client, params

pytestmark = pytest.mark.stack


def test_the_service_get_carries_certificate_metadata_through_the_sdk(emulator: LocalStack):
    service = make_client(emulator).api_management_service.get(RG, "contoso-apim")

    custom = [
        h for h in service.hostname_configurations or [] if h.host_name == "api.contoso.example"
    ]
    assert len(custom) == 1 and custom[0].certificate is not None
    assert custom[0].certificate.thumbprint == "8E1D6A3C0F4B2A9D7C6E5F4A3B2C1D0E9F8A7B6C"
    assert custom[0].certificate.subject == "CN=api.contoso.example"
    assert custom[0].certificate.expiry is not None and custom[0].certificate.expiry.year == 2027
    assert [c.store_name for c in service.certificates or []] == ["Root"]
    key = "Microsoft.WindowsAzure.ApiManagement.Gateway.Protocols.Server.Http2"
    assert (service.custom_properties or {})[key] == "True"


def test_diagnostic_settings_are_served_and_patched_per_service(emulator: LocalStack):
    def listed(name: str) -> tuple[int, dict]:
        url = (
            f"{emulator.arm_endpoint}{emulator.service_id(name)}/providers/"
            "Microsoft.Insights/diagnosticSettings?api-version=2021-05-01-preview"
        )
        return arm_get(emulator, url)

    status, body = listed("contoso-apim")
    assert status == 200
    assert [(d["name"], d["type"]) for d in body["value"]] == [
        ("apim-to-log-analytics", "Microsoft.Insights/diagnosticSettings")
    ]
    assert body["value"][0]["properties"]["logs"] == [{"categoryGroup": "allLogs", "enabled": True}]
    assert listed("contoso-standby") == (200, {"value": []})

    emulator.control.patch_service(
        "contoso-standby", {"diagnosticSettings": [{"name": "x", "properties": {}}]}
    )
    assert [d["name"] for d in listed("contoso-standby")[1]["value"]] == ["x"]
    assert emulator.control.service("contoso-standby")["diagnosticSettings"] == [
        {"name": "x", "properties": {}}
    ]


def test_a_restore_leaves_the_targets_settings_as_they_were(emulator: LocalStack):
    emulator.control.set_retry_after(0)
    before = emulator.control.service("contoso-standby")
    client = make_client(emulator)
    client.api_management_service.begin_backup(
        RG, "contoso-apim", params("contoso-apim-settings.apimbackup")
    ).result()

    client.api_management_service.begin_restore(
        RG, "contoso-standby", params("contoso-apim-settings.apimbackup")
    ).result()

    after = emulator.control.service("contoso-standby")
    assert after["configuration"] == emulator.control.service_config("contoso-apim")
    for kept in ("properties", "identity", "diagnosticSettings", "sku", "location"):
        assert after[kept] == before[kept], kept
