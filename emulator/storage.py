"""Where the emulated APIM writes and reads its backups: the Blob service of Azurite.

Real APIM turns the ``storageAccount`` name of a backup request into
``https://<name>.blob.core.windows.net``; the emulator knows exactly one account and
maps it to the Azurite endpoint it was given.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient


class BlobStore(Protocol):
    account_name: str
    account_key: str

    def write(self, container: str, name: str, data: bytes) -> None: ...

    def read(self, container: str, name: str) -> bytes | None: ...

    def has_cors_rules(self) -> bool: ...

    def container_exists(self, container: str) -> bool: ...


class AzuriteBlobStore:
    """The one storage account the emulator writes backups into."""

    def __init__(self, blob_endpoint: str, account_name: str, account_key: str) -> None:
        self.account_name = account_name
        self.account_key = account_key
        self._client = BlobServiceClient(
            account_url=blob_endpoint,
            credential={"account_name": account_name, "account_key": account_key},
        )

    def write(self, container: str, name: str, data: bytes) -> None:
        container_client = self._client.get_container_client(container)
        with contextlib.suppress(ResourceExistsError):  # APIM creates a missing container
            container_client.create_container()
        container_client.upload_blob(name, data, overwrite=True)

    def read(self, container: str, name: str) -> bytes | None:
        try:
            return self._client.get_blob_client(container, name).download_blob().readall()
        except ResourceNotFoundError:
            return None

    def has_cors_rules(self) -> bool:
        properties = self._client.get_service_properties()
        return bool(properties.get("cors"))

    def container_exists(self, container: str) -> bool:
        return bool(self._client.get_container_client(container).exists())
