"""Resource Manager routes that answer at once: auth, service, workspace links, the log."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from devstack.azurite import DEV_ACCOUNT
from devstack.stack import LocalStack
from shared.adapters.credentials import EMULATOR_TOKEN
from tests.emulator import RG, arm_get, make_client

pytestmark = pytest.mark.stack


def _get(stack: LocalStack, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    return arm_get(stack, f"{stack.arm_endpoint}{path}", headers)


@pytest.mark.parametrize("authorization", [None, "Bearer ", "Basic abc"])
def test_requests_without_a_bearer_token_get_401(emulator: LocalStack, authorization: str | None):
    path = emulator.service_id("contoso-apim") + "?api-version=2024-05-01"
    headers = {} if authorization is None else {"Authorization": authorization}

    status, body = _get(emulator, path, headers)

    assert status == 401
    assert body["error"]["code"] == "AuthenticationFailed"
    ok, _ = _get(emulator, path, {"Authorization": f"Bearer {EMULATOR_TOKEN}"})
    assert ok == 200


def test_missing_api_version_is_refused(emulator: LocalStack):
    status, body = _get(
        emulator, emulator.service_id("contoso-apim"), {"Authorization": "Bearer x"}
    )
    assert status == 400
    assert body["error"]["code"] == "MissingApiVersionParameter"


def test_service_fields_deserialize_through_the_sdk(emulator: LocalStack):
    client = make_client(emulator)

    # Names match case-insensitively, as in ARM.
    service = client.api_management_service.get(RG.upper(), "Contoso-APIM")

    assert service.id == emulator.service_id("contoso-apim")
    assert service.name == "contoso-apim"
    assert service.sku.name == "Developer"
    assert service.sku.capacity == 1
    assert service.provisioning_state == "Succeeded"
    assert service.identity is not None and service.identity.type == "SystemAssigned"
    assert service.identity.principal_id
    hostnames = {h.host_name for h in service.hostname_configurations or []}
    assert hostnames == {"contoso-apim.azure-api.net", "api.contoso.example"}
    assert service.gateway_url == "https://contoso-apim.azure-api.net"
    assert service.virtual_network_type == "None"
    assert service.platform_version == "stv2"
    assert service.custom_properties


def test_user_assigned_identity_and_network_settings(emulator: LocalStack):
    client = make_client(emulator)

    fabrikam = client.api_management_service.get(RG, "fabrikam-apim")
    standby = client.api_management_service.get(RG, "fabrikam-standby")

    assert fabrikam.identity is not None and fabrikam.identity.type == "UserAssigned"
    assert fabrikam.identity.principal_id is None
    identities = fabrikam.identity.user_assigned_identities or {}
    assert [i.client_id for i in identities.values()] == ["11111111-2222-3333-4444-555555555555"]
    assert standby.sku.name == "Premium"
    assert standby.virtual_network_type == "External"
    assert standby.virtual_network_configuration is not None
    subnet = str(standby.virtual_network_configuration.subnet_resource_id)
    assert subnet.endswith("/subnets/apim")
    assert [loc.location for loc in standby.additional_locations or []] == ["East US 2"]


@pytest.mark.parametrize(
    ("name", "tier"),
    [("consumption-apim", "Consumption"), ("v2-apim", "StandardV2"), ("gateway-apim", "Premium")],
)
def test_every_seeded_tier_is_reported(emulator: LocalStack, name: str, tier: str):
    assert make_client(emulator).api_management_service.get(RG, name).sku.name == tier


def test_unknown_service_is_404(emulator: LocalStack):
    with pytest.raises(ResourceNotFoundError) as caught:
        make_client(emulator).api_management_service.get(RG, "nope-apim")
    assert caught.value.error is not None and caught.value.error.code == "ResourceNotFound"


def test_workspace_links_expose_gateways(emulator: LocalStack):
    client = make_client(emulator)

    links = list(client.api_management_workspace_links.list_by_service(RG, "gateway-apim"))
    none = list(client.api_management_workspace_links.list_by_service(RG, "contoso-apim"))

    assert len(links) == 1
    assert str(links[0].workspace_id).endswith("/workspaces/team-a")
    assert [g.id for g in links[0].gateways or []] == [
        f"/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}"
        "/providers/Microsoft.ApiManagement/gateways/gw-team-a"
    ]
    assert none == []


def test_patched_service_is_what_the_sdk_sees(emulator: LocalStack):
    emulator.control.patch_service("contoso-apim", {"sku": {"name": "StandardV2"}})

    assert make_client(emulator).api_management_service.get(RG, "contoso-apim").sku.name == (
        "StandardV2"
    )
    emulator.control.reset()
    assert make_client(emulator).api_management_service.get(RG, "contoso-apim").sku.name == (
        "Developer"
    )


def test_request_log_records_arm_requests_only(emulator: LocalStack):
    client = make_client(emulator)
    client.api_management_service.get(RG, "contoso-apim")
    emulator.control.service_config("contoso-apim")  # a control call: not logged

    log = emulator.control.requests()

    assert len(log) == 1
    entry = log[0]
    assert entry["method"] == "GET"
    assert entry["path"] == emulator.service_id("contoso-apim")
    assert entry["query"] == {"api-version": "2024-05-01"}
    assert entry["status"] == 200
    assert entry["time"]
    emulator.control.clear_requests()
    assert emulator.control.requests() == []


def test_seed_configuration_is_readable(emulator: LocalStack):
    contoso = emulator.control.service_config("contoso-apim")
    standby = emulator.control.service_config("contoso-standby")

    counts = {key: len(value) for key, value in contoso.items()}
    assert counts == {"apis": 2, "products": 1, "namedValues": 1, "users": 1, "subscriptions": 1}
    assert standby != contoso


def test_reset_with_a_seed_replaces_the_services(emulator: LocalStack):
    seed = {
        "subscriptionId": emulator.subscription_id,
        "resourceGroup": RG,
        "services": [{"name": "solo-apim", "sku": {"name": "Basic", "capacity": 2}}],
    }
    emulator.control.reset(seed)
    client = make_client(emulator)
    try:
        solo = client.api_management_service.get(RG, "solo-apim")
        with pytest.raises(ResourceNotFoundError):
            client.api_management_service.get(RG, "contoso-apim")
    finally:
        emulator.control.reset()  # without a seed: the start-up seed again
    assert (solo.sku.name, solo.sku.capacity) == ("Basic", 2)
    assert client.api_management_service.get(RG, "contoso-apim").name == "contoso-apim"


def test_a_route_matches_the_whole_path(emulator: LocalStack):
    """The path is percent-decoded before routing: ``.../backup%0A`` is no route to a
    backup (a full match, not ``$``: issue 17, defect 9). Nothing starts."""
    body = {
        "storageAccount": DEV_ACCOUNT,
        "containerName": "emulator-tests",
        "backupName": "route-check.apimbackup",
        "accessType": "SystemAssignedManagedIdentity",
    }
    url = f"{emulator.arm_endpoint}{emulator.service_id('contoso-apim')}/backup%0A"
    request = urllib.request.Request(
        url + "?api-version=2024-05-01",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {EMULATOR_TOKEN}", "Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=emulator.ca_bundle)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=context, timeout=10)

    assert refused.value.code == 404
    assert emulator.control.operations() == []
