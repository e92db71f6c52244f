"""The backup account's control plane in the emulator: the account (firewall), its blob
service (versioning, soft delete) and a container (immutability policy), as Resource
Manager answers them, and the ``/_emulator/storage`` control that changes them."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from devstack.stack import LocalStack
from tests.emulator import arm_get

pytestmark = pytest.mark.stack

API = "?api-version=2023-05-01"


def _get(stack: LocalStack, suffix: str) -> tuple[int, Any]:
    return arm_get(stack, f"{stack.arm_endpoint}{stack.storage_account_id()}{suffix}{API}")


def test_the_account_answers_as_the_templates_deploy_it(emulator: LocalStack):
    status, account = _get(emulator, "")
    assert status == 200
    assert account["id"] == emulator.storage_account_id()
    assert account["properties"]["networkAcls"]["defaultAction"] == "Allow"
    status, service = _get(emulator, "/blobServices/default")
    assert status == 200
    assert service["properties"]["isVersioningEnabled"] is True


def test_a_container_shows_its_immutability_policy(emulator: LocalStack):
    blobs = BlobServiceClient.from_connection_string(emulator.connection_string)
    with contextlib.suppress(ResourceExistsError):
        blobs.create_container("immutable-doc")
    emulator.control.patch_storage(
        {"immutabilityPolicies": {"immutable-doc": {"immutabilityPeriodSinceCreationInDays": 7}}}
    )

    status, container = _get(emulator, "/blobServices/default/containers/immutable-doc")

    assert status == 200
    assert container["properties"]["hasImmutabilityPolicy"] is True
    policy = container["properties"]["immutabilityPolicy"]["properties"]
    assert policy["immutabilityPeriodSinceCreationInDays"] == 7
    assert policy["state"] == "Unlocked"
    missing, body = _get(emulator, "/blobServices/default/containers/no-such-container")
    assert missing == 404
    assert body["error"]["code"] == "ContainerNotFound"


def test_another_account_is_not_found_and_reset_restores_the_defaults(emulator: LocalStack):
    other = emulator.storage_account_id().replace("devstoreaccount1", "other")
    status, body = arm_get(emulator, f"{emulator.arm_endpoint}{other}{API}")
    assert status == 404
    assert body["error"]["code"] == "ResourceNotFound"
    emulator.control.patch_storage({"networkAcls": {"defaultAction": "Deny"}})
    emulator.control.reset()
    assert emulator.control.storage()["networkAcls"]["defaultAction"] == "Allow"


def test_an_unknown_patch_key_is_refused(emulator: LocalStack):
    with pytest.raises(RuntimeError, match="unknown patch keys"):
        emulator.control.patch_storage({"sku": "Premium_LRS"})


def test_role_assignments_are_listed_for_a_principal_at_and_above_a_scope(emulator: LocalStack):
    account = emulator.storage_account_id()
    container = f"{account}/blobServices/default/containers/apim-backups"
    url = (
        f"{emulator.arm_endpoint}{container}/providers/Microsoft.Authorization/roleAssignments"
        "?api-version=2022-04-01&$filter=assignedTo('aaaaaaaa-0000-0000-0000-000000000001')"
    )

    status, body = arm_get(emulator, url)

    assert status == 200
    assert [item["properties"]["scope"] for item in body["value"]] == [account]
    assert body["value"][0]["properties"]["roleDefinitionId"].endswith(
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
    )
    emulator.control.set_role_assignments([])
    assert arm_get(emulator, url)[1]["value"] == []
