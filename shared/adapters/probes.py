"""Read-only looks at a deployment, for the doctor: the backup account through Resource
Manager, and whether the function's identity may write a table or list the container.

Every answer is a plain value or a short reason (status and error code, never a URL or
a message that could quote one); nothing here raises an SDK error to the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

from shared.rules.service import arm_error_message

if TYPE_CHECKING:
    from azure.data.tables import TableClient
    from azure.mgmt.apimanagement import ApiManagementClient
    from azure.storage.blob import ContainerClient

STORAGE_API = "2023-05-01"
ROLE_ASSIGNMENTS_API = "2022-04-01"
ARM_TIMEOUT = 15  # seconds, per connection and per read: a doctor answers promptly
PROBE_PARTITION = "~doctor-probe"  # sorts after every service's partition; deleted at once


def _reason(exc: AzureError) -> str:
    if isinstance(exc, HttpResponseError):
        code = getattr(exc, "error_code", None) or ""
        return f"refused: {exc.status_code} {code}".strip()
    return f"unreachable: {type(exc).__name__}"


@dataclass(frozen=True)
class ArmRead:
    """One GET of Resource Manager: the JSON (None on 404), or why it failed."""

    body: dict[str, Any] | None
    error: str | None = None


class StorageAccountReader:
    """GETs of a storage account's control plane, through the ARM pipeline (credential,
    retries) of the APIM client for the account's subscription."""

    def __init__(self, client_for: Callable[[str], ApiManagementClient], endpoint: str) -> None:
        self._client_for = client_for
        self._endpoint = endpoint.rstrip("/")

    def role_assignments(self, scope: str, principal_id: str) -> ArmRead:
        """The principal's role assignments at, above or below ``scope`` (one GET; needs
        Microsoft.Authorization/roleAssignments/read there, which Reader holds)."""
        subscription_id = scope.split("/")[2]
        query = f"$filter={quote(f"assignedTo('{principal_id}')")}"
        path = f"{scope}/providers/Microsoft.Authorization/roleAssignments"
        return self.get(subscription_id, path, ROLE_ASSIGNMENTS_API, query)

    def get(
        self, subscription_id: str, path: str, api_version: str = STORAGE_API, query: str = ""
    ) -> ArmRead:
        from azure.core.rest import HttpRequest

        url = f"{self._endpoint}{path}?api-version={api_version}" + (f"&{query}" if query else "")
        try:
            response = self._client_for(subscription_id)._send_request(
                HttpRequest("GET", url),
                connection_timeout=ARM_TIMEOUT,
                read_timeout=ARM_TIMEOUT,
            )
        except AzureError as exc:
            return ArmRead(None, _reason(exc))
        if response.status_code == 404:
            return ArmRead(None)
        if response.status_code != 200:
            return ArmRead(None, arm_error_message(response.text(), response.status_code))
        try:
            body = response.json()
        except ValueError:
            return ArmRead(None, "Resource Manager answered no JSON")
        return ArmRead(body if isinstance(body, dict) else None)


def probe_table(table: TableClient) -> str | None:
    """Create a probe entity, then delete it: None when both worked, "missing" when the
    table does not exist, else why not."""
    key = {"PartitionKey": PROBE_PARTITION, "RowKey": uuid.uuid4().hex}
    try:
        table.create_entity({**key, "Purpose": "python -m shared doctor; deleted at once"})
    except ResourceNotFoundError:
        return "missing"
    except AzureError as exc:
        return f"write {_reason(exc)}"
    try:
        table.delete_entity(key["PartitionKey"], key["RowKey"])
    except AzureError as exc:
        return f"created a probe entity but its delete was {_reason(exc)}"
    return None


def probe_listing(container: ContainerClient) -> str | None:
    """List one blob name: None when the listing works, "missing" when the container
    does not exist, else why not."""
    try:
        list(islice(container.list_blob_names(results_per_page=1), 1))
    except ResourceNotFoundError:
        return "missing"
    except AzureError as exc:
        return f"listing {_reason(exc)}"
    return None
