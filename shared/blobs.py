"""Blob Storage adapter for what the core needs to know about the backup account."""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient


class BackupBlobs:
    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._service = service
        self._container = service.get_container_client(container)

    def cors_rule_count(self) -> int:
        """CORS rules on the Blob service: with any, APIM's backup fails obscurely."""
        return len(self._service.get_service_properties().get("cors") or [])

    def size_of(self, blob_name: str) -> int | None:
        """The blob's size in bytes, or None when it does not exist."""
        try:
            return int(self._container.get_blob_client(blob_name).get_blob_properties().size)
        except ResourceNotFoundError:
            return None
