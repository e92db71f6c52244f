"""Tests of the local APIM emulator, through the real azure-mgmt-apimanagement client."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters

from devstack.azurite import DEV_ACCOUNT
from devstack.stack import LocalStack
from shared.adapters.credentials import EMULATOR_TOKEN, EmulatorCredential

RG = "rg-apim"
CONTAINER = "emulator-tests"
USER_CLIENT_ID = "11111111-2222-3333-4444-555555555555"  # fabrikam-apim's identity in the seed


def make_client(stack: LocalStack, **kwargs: Any) -> ApiManagementClient:
    """The real client, polling fast and retrying without long back-offs."""
    options: dict[str, Any] = {
        "polling_interval": 0.05,
        "retry_total": 2,
        "retry_backoff_factor": 0.01,
        "connection_verify": stack.ca_bundle,
    }
    options.update(kwargs)
    return ApiManagementClient(
        EmulatorCredential(), stack.subscription_id, base_url=stack.arm_endpoint, **options
    )


def params(
    backup_name: str,
    access_type: str = "SystemAssignedManagedIdentity",
    **kwargs: Any,
) -> ApiManagementServiceBackupRestoreParameters:
    # The SDK defaults to AccessKey: always say which access type is meant.
    values: dict[str, Any] = {
        "storage_account": DEV_ACCOUNT,
        "container_name": CONTAINER,
        "backup_name": backup_name,
        "access_type": access_type,
    }
    values.update(kwargs)
    return ApiManagementServiceBackupRestoreParameters(**values)


def arm_get(stack: LocalStack, url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """A bare GET (no SDK): status and JSON body. Sends the emulator token unless told."""
    if headers is None:
        headers = {"Authorization": f"Bearer {EMULATOR_TOKEN}"}
    request = urllib.request.Request(url, headers=headers)
    context = ssl.create_default_context(cafile=stack.ca_bundle)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")
