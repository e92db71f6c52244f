"""Credentials and SDK clients, chosen in one place and made lazily, once per process."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from azure.core.credentials import TokenCredential
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import RetryPolicy
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.adapters.credentials import EmulatorCredential
from shared.lazy import cached_property
from shared.settings import Settings
from shared.settings.parse import ArmCredentialKind

if TYPE_CHECKING:
    from azure.mgmt.apimanagement import ApiManagementClient

log = logging.getLogger(__name__)

# Retries for Resource Manager calls: azure-core retries 408/429/5xx and honours
# Retry-After. A timer or an HTTP request must not spend minutes here, so keep it short.
ARM_RETRY_TOTAL = 3
ARM_RETRY_BACKOFF_MAX = 20
ARM_RETRY_AFTER_CAP = 10
# Blob retries: the SDK's default (15 s, then 18 s, then 24 s) kept an HTTP caller
# waiting 84 s before the 503 when storage was down. Two quick retries ride out a blip;
# the next tick or the caller's own retry does the rest.
BLOB_RETRY_TOTAL = 2
BLOB_RETRY_INITIAL_BACKOFF = 1
BLOB_RETRY_INCREMENT_BASE = 2


class CappedRetryPolicy(RetryPolicy[Any, Any]):
    """azure-core's retries, but a Retry-After is waited for at most ``cap`` seconds: a
    function answering HTTP must do so within 230 s, whatever Resource Manager asks."""

    def __init__(self, cap: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cap = cap

    def get_retry_after(self, response: PipelineResponse[Any, Any]) -> float | None:
        asked = super().get_retry_after(response)
        return None if asked is None else min(asked, self.cap)


def make_arm_credential(settings: Settings) -> TokenCredential:
    kind = settings.arm_credential
    if kind is ArmCredentialKind.EMULATOR:
        log.info("ARM credential: fixed emulator token for %s", settings.arm_endpoint)
        return EmulatorCredential()
    if kind is ArmCredentialKind.DEFAULT:
        from azure.identity import DefaultAzureCredential

        log.info("ARM credential: DefaultAzureCredential")
        return DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)
    from azure.identity import ManagedIdentityCredential

    log.info(
        "ARM credential: managed identity (%s)",
        f"client id {settings.azure_client_id}" if settings.azure_client_id else "system-assigned",
    )
    return ManagedIdentityCredential(client_id=settings.azure_client_id)


class Clients:
    """The SDK clients one process needs, each made on first use and then reused."""

    def __init__(self, settings: Settings, arm_credential: TokenCredential | None = None) -> None:
        self._settings = settings
        self._arm_credential = arm_credential
        self._apim: dict[str, ApiManagementClient] = {}
        self._lock = threading.Lock()

    @cached_property
    def arm_credential(self) -> TokenCredential:
        return self._arm_credential or make_arm_credential(self._settings)

    @cached_property
    def _storage_credential(self) -> TokenCredential:
        storage = self._settings.storage
        if storage.client_id:
            from azure.identity import ManagedIdentityCredential

            return ManagedIdentityCredential(client_id=storage.client_id)
        return self.arm_credential

    def apim(self, subscription_id: str) -> ApiManagementClient:
        """The APIM management client for one subscription (services may span several)."""
        with self._lock:
            client = self._apim.get(subscription_id)
            if client is None:
                # Imported here: the package loads every model at import (FACTS.md), and
                # routes that never call Resource Manager should not pay for it.
                from azure.mgmt.apimanagement import ApiManagementClient

                endpoint = self._settings.arm_endpoint
                client = ApiManagementClient(
                    self.arm_credential,
                    subscription_id,
                    base_url=endpoint,
                    credential_scopes=[f"{endpoint}/.default"],
                    retry_policy=CappedRetryPolicy(
                        ARM_RETRY_AFTER_CAP,
                        retry_total=ARM_RETRY_TOTAL,
                        retry_backoff_max=ARM_RETRY_BACKOFF_MAX,
                    ),
                )
                self._apim[subscription_id] = client
            return client

    @cached_property
    def blob_service(self) -> BlobServiceClient:
        from azure.storage.blob import ExponentialRetry

        storage = self._settings.storage
        retry = ExponentialRetry(
            initial_backoff=BLOB_RETRY_INITIAL_BACKOFF,
            increment_base=BLOB_RETRY_INCREMENT_BASE,
            retry_total=BLOB_RETRY_TOTAL,
        )
        if storage.connection_string is not None:
            return BlobServiceClient.from_connection_string(
                storage.connection_string, retry_policy=retry
            )
        assert storage.blob_service_uri is not None  # guaranteed by Settings
        return BlobServiceClient(
            storage.blob_service_uri, credential=self._storage_credential, retry_policy=retry
        )

    @cached_property
    def table_service(self) -> TableServiceClient:
        storage = self._settings.storage
        if storage.connection_string is not None:
            return TableServiceClient.from_connection_string(storage.connection_string)
        assert storage.table_service_uri is not None
        return TableServiceClient(storage.table_service_uri, credential=self._storage_credential)

    def table(self, name: str) -> TableClient:
        return self.table_service.get_table_client(name)
