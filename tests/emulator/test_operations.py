"""Backup and restore as long-running operations, through the real SDK."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import BlobServiceClient, CorsRule

from devstack.azurite import DEV_KEY
from devstack.stack import LocalStack
from shared.rules.armurl import arm_poll_url
from tests.emulator import CONTAINER, RG, USER_CLIENT_ID, arm_get, make_client, params

pytestmark = pytest.mark.stack

DAY = 24 * 3600


@pytest.fixture
def fast(emulator: LocalStack) -> LocalStack:
    # Retry-After 0 lets the client's short polling interval decide how often it polls.
    emulator.control.set_retry_after(0)
    return emulator


def _name(service: str) -> str:
    return f"{service}-{uuid.uuid4().hex[:12]}.apimbackup"


def _blob(stack: LocalStack, name: str) -> dict[str, object]:
    blobs = BlobServiceClient.from_connection_string(stack.connection_string)
    return dict(json.loads(blobs.get_blob_client(CONTAINER, name).download_blob().readall()))


def _backup(stack: LocalStack, service: str, **kwargs: Any) -> str:
    name = _name(service)
    client = make_client(stack)
    client.api_management_service.begin_backup(RG, service, params(name, **kwargs)).result()
    return name


def test_backup_writes_the_configuration_to_azurite(fast: LocalStack):
    client = make_client(fast)
    name = _name("contoso-apim")

    poller = client.api_management_service.begin_backup(
        RG, "contoso-apim", params(name, "AccessKey", access_key=DEV_KEY)
    )
    resource = poller.result()

    assert resource.name == "contoso-apim"
    assert resource.provisioning_state == "Succeeded"
    blob = _blob(fast, name)
    assert blob["configuration"] == fast.control.service_config("contoso-apim")
    assert blob["sku"] == {"name": "Developer", "capacity": 1}
    assert blob["takenAt"]


def test_user_assigned_identity_with_its_client_id_backs_up(fast: LocalStack):
    name = _backup(
        fast, "fabrikam-apim", access_type="UserAssignedManagedIdentity", client_id=USER_CLIENT_ID
    )
    assert _blob(fast, name)["service"] == "fabrikam-apim"


def test_updating_while_running_and_409_for_a_second_operation(fast: LocalStack):
    fast.control.set_duration(600)
    client = make_client(fast)
    poller = client.api_management_service.begin_backup(RG, "contoso-apim", params(_name("c")))

    assert client.api_management_service.get(RG, "contoso-apim").provisioning_state == "Updating"
    with pytest.raises(ResourceExistsError) as caught:
        client.api_management_service.begin_restore(RG, "contoso-apim", params(_name("c")))
    assert caught.value.status_code == 409
    assert not poller.done()

    fast.control.advance_clock(601)
    assert poller.result(timeout=10).provisioning_state == "Succeeded"
    assert client.api_management_service.get(RG, "contoso-apim").provisioning_state == "Succeeded"


def test_resume_from_a_continuation_token_on_a_new_client(fast: LocalStack):
    fast.control.set_duration(600)
    first = make_client(fast).api_management_service.begin_backup(
        RG, "contoso-apim", params(name := _name("contoso-apim"))
    )
    token = first.continuation_token()

    # With a token the other arguments are not used; real values keep the call well typed.
    resumed = make_client(fast).api_management_service.begin_backup(
        RG, "contoso-apim", params("unused"), continuation_token=token
    )
    fast.control.advance_clock(601)

    assert resumed.result(timeout=10).name == "contoso-apim"
    first.result(timeout=10)  # leave no polling thread behind
    assert _blob(fast, name)["service"] == "contoso-apim"


def test_location_without_a_poller(fast: LocalStack):
    client = make_client(fast)
    # polling=False starts no thread; cls turns the 202 into its Location header.
    location = str(
        client.api_management_service.begin_backup(
            RG,
            "contoso-apim",
            params(_name("contoso-apim")),
            polling=False,
            cls=lambda response, _body, _headers: response.http_response.headers["Location"],
        ).result()
    )

    # Exactly the shape Azure answers (recorded ARM traffic of the Azure SDK's APIM
    # tests): under the service, lower-case "operationresults", a base64 id with its
    # padding. Resource Manager authorizes the poll as service/operationresults/read.
    service_id = fast.service_id("contoso-apim")
    shape = re.compile(
        re.escape(f"{fast.arm_endpoint}{service_id}/operationresults/")
        + r"(?P<id>[A-Za-z0-9_-]+={0,2})"
        + re.escape("?api-version=2024-05-01")
    )
    match = shape.fullmatch(location)
    assert match, location
    decoded = base64.urlsafe_b64decode(match["id"]).decode()
    assert re.fullmatch(r"westeurope:contoso-apim_Backup_[0-9a-f]{32}", decoded), decoded
    assert [op["id"] for op in fast.control.operations()] == [match["id"]]
    # The product keeps that URL as it is (only re-rooted on ARM_ENDPOINT).
    assert arm_poll_url(fast.arm_endpoint, location) == location


def test_an_operation_is_found_only_under_its_own_service(fast: LocalStack):
    client = make_client(fast)
    location = str(
        client.api_management_service.begin_backup(
            RG,
            "contoso-apim",
            params(_name("contoso-apim")),
            polling=False,
            cls=lambda response, _body, _headers: response.http_response.headers["Location"],
        ).result()
    )
    elsewhere = location.replace("/service/contoso-apim/", "/service/contoso-standby/")
    old_shape = location.replace(
        f"/resourceGroups/{RG}/providers/Microsoft.ApiManagement/service/contoso-apim/"
        "operationresults/",
        "/providers/Microsoft.ApiManagement/locations/westeurope/operationResults/",
    )

    assert arm_get(fast, location)[0] == 200
    assert arm_get(fast, elsewhere)[0] == 404
    assert old_shape != location and arm_get(fast, old_shape)[0] == 404


@pytest.mark.parametrize(
    ("service", "kwargs", "code", "fragment"),
    [
        ("consumption-apim", {}, "MethodNotAllowedInPricingTier", "'Consumption' pricing tier"),
        ("v2-apim", {}, "MethodNotAllowedInPricingTier", "'StandardV2' pricing tier"),
        ("gateway-apim", {}, "WorkspaceGatewaysNotSupported", "workspace gateways"),
        (
            "contoso-apim",
            {"access_type": "AccessKey", "access_key": "d3Jvbmc="},
            "InvalidParameters",
            "accessKey",
        ),
        ("contoso-apim", {"access_type": "AccessKey"}, "InvalidParameters", "accessKey"),
        ("fabrikam-apim", {}, "InvalidParameters", "no system-assigned managed identity"),
        (
            "fabrikam-apim",
            {
                "access_type": "UserAssignedManagedIdentity",
                "client_id": "00000000-0000-0000-0000-000000000009",
            },
            "InvalidParameters",
            "clientId",
        ),
        ("contoso-apim", {"storage_account": "otheraccount"}, "InvalidParameters", "otheraccount"),
        ("contoso-apim", {"container_name": "Bad_Name"}, "InvalidParameters", "container name"),
        # A full match: "$" alone lets a final newline through (issue 17, defect 9).
        ("contoso-apim", {"container_name": "backups\n"}, "InvalidParameters", "container name"),
    ],
)
def test_refusals_are_synchronous_400s(
    fast: LocalStack, service: str, kwargs: dict[str, str], code: str, fragment: str
):
    client = make_client(fast)

    with pytest.raises(HttpResponseError) as caught:
        client.api_management_service.begin_backup(RG, service, params(_name(service), **kwargs))

    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == code
    assert fragment in str(caught.value.error.message)
    assert fast.control.operations() == []  # nothing started


def test_cors_on_the_blob_service_fails_the_backup(fast: LocalStack):
    blobs = BlobServiceClient.from_connection_string(fast.connection_string)
    blobs.set_service_properties(cors=[CorsRule(["https://example.com"], ["GET"])])
    try:
        with pytest.raises(HttpResponseError) as caught:
            _backup(fast, "contoso-apim")
    finally:
        blobs.set_service_properties(cors=[])
    assert "Invalid parameter: backupStorageAccount" in str(caught.value)
    assert blobs.get_service_properties()["cors"] == []
    assert _backup(fast, "contoso-apim")  # and without CORS it works again


def test_restore_into_the_same_service_brings_the_configuration_back(fast: LocalStack):
    original = fast.control.service_config("contoso-apim")
    name = _backup(fast, "contoso-apim")
    fast.control.patch_service("contoso-apim", {"configuration": {"apis": []}})

    make_client(fast).api_management_service.begin_restore(
        RG, "contoso-apim", params(name)
    ).result()

    assert fast.control.service_config("contoso-apim") == original


def test_restore_into_another_service_keeps_its_hostnames(fast: LocalStack):
    client = make_client(fast)
    before = client.api_management_service.get(RG, "contoso-standby")
    name = _backup(fast, "contoso-apim")

    restored = client.api_management_service.begin_restore(
        RG, "contoso-standby", params(name)
    ).result()

    assert fast.control.service_config("contoso-standby") == fast.control.service_config(
        "contoso-apim"
    )
    hostnames = [h.host_name for h in restored.hostname_configurations or []]
    assert hostnames == [h.host_name for h in before.hostname_configurations or []]
    assert "standby.contoso.example" in hostnames


def test_restore_of_a_backup_older_than_30_days_fails(fast: LocalStack):
    name = _backup(fast, "contoso-apim")
    fast.control.advance_clock(31 * DAY)
    before = fast.control.service_config("contoso-apim")

    with pytest.raises(HttpResponseError) as caught:
        make_client(fast).api_management_service.begin_restore(
            RG, "contoso-apim", params(name)
        ).result()

    assert caught.value.error is not None
    assert caught.value.error.message == "Cannot restore: backup expired"
    assert fast.control.service_config("contoso-apim") == before


def test_restore_of_a_29_day_old_backup_works(fast: LocalStack):
    name = _backup(fast, "contoso-apim")
    fast.control.advance_clock(29 * DAY)
    make_client(fast).api_management_service.begin_restore(
        RG, "contoso-apim", params(name)
    ).result()
    assert fast.control.operations()[-1]["status"] == "Succeeded"


def test_restore_across_tiers_names_both_skus(fast: LocalStack):
    name = _backup(
        fast, "fabrikam-apim", access_type="UserAssignedManagedIdentity", client_id=USER_CLIENT_ID
    )

    with pytest.raises(HttpResponseError) as caught:
        make_client(fast).api_management_service.begin_restore(
            RG, "fabrikam-standby", params(name)
        ).result()

    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.message == (
        "Cannot restore: current SKU is 'Premium', backup SKU is 'Standard'"
    )


def test_restore_of_a_missing_blob_fails_clearly(fast: LocalStack):
    with pytest.raises(HttpResponseError) as caught:
        make_client(fast).api_management_service.begin_restore(
            RG, "contoso-apim", params("nothing-here.apimbackup")
        ).result()
    assert "'nothing-here.apimbackup' was not found" in str(caught.value)


def test_a_failed_operation_surfaces_its_error_and_stays_failed(fast: LocalStack):
    fast.control.fail_next_operation("contoso-apim", "BackupFailed", "The disk is on fire.")
    poller = make_client(fast).api_management_service.begin_backup(
        RG, "contoso-apim", params(name := _name("contoso-apim"))
    )

    with pytest.raises(HttpResponseError) as caught:
        poller.result()

    assert caught.value.status_code == 400
    assert caught.value.error is not None and caught.value.error.code == "BackupFailed"
    assert "The disk is on fire." in str(caught.value)
    # Every later poll gives the same final answer.
    poll = next(r for r in fast.control.requests() if "/operationresults/" in r["path"])
    url = f"{fast.arm_endpoint}{poll['path']}?api-version=2024-05-01"
    final = (400, {"error": {"code": "BackupFailed", "message": "The disk is on fire."}})
    assert arm_get(fast, url) == arm_get(fast, url) == final
    blobs = BlobServiceClient.from_connection_string(fast.connection_string)
    assert not blobs.get_blob_client(CONTAINER, name).exists()
    assert _backup(fast, "contoso-apim")  # the failure was for one operation only
