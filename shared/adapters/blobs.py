"""Blob Storage adapter for what the core needs to know about the backup account."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

log = logging.getLogger(__name__)

_NOT_PERMITTED = frozenset({"AuthorizationPermissionMismatch", "AuthorizationFailure"})


class BackupBlobs:
    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._service = service
        self.container: ContainerClient = service.get_container_client(container)

    def cors_rule_count(self) -> int | None:
        """CORS rules on the Blob service (with any, APIM's backup fails obscurely); None
        when the identity may not read the service's properties (a control-plane read:
        Reader on the account, which infra/ grants)."""
        try:
            return len(self._service.get_service_properties().get("cors") or [])
        except HttpResponseError as exc:
            # Not authorised for this one read: skip it. Not authenticated at all: that
            # is no reason to skip anything, and the caller must hear of it.
            code = getattr(exc, "error_code", None)
            if exc.status_code != 403 or code not in _NOT_PERMITTED:
                raise
            log.warning("May not read the Blob service's CORS rules (%s): check skipped", code)
            return None

    def size_of(self, blob_name: str) -> int | None:
        """The blob's size in bytes, or None when it does not exist."""
        try:
            return int(self.container.get_blob_client(blob_name).get_blob_properties().size)
        except ResourceNotFoundError:
            return None

    def write_json(self, blob_name: str, value: Any) -> None:
        """Write (or overwrite) a small JSON blob, such as a backup's manifest."""
        data = json.dumps(value, indent=2, sort_keys=True).encode()
        blob = self.container.get_blob_client(blob_name)
        settings = ContentSettings(content_type="application/json")
        try:
            blob.upload_blob(data, overwrite=True, content_settings=settings)
        except ResourceNotFoundError:
            # Before the first backup has finished the container may not exist yet (APIM
            # creates it then); creating it first is what APIM would do anyway.
            with contextlib.suppress(ResourceExistsError):
                self.container.create_container()
            blob.upload_blob(data, overwrite=True, content_settings=settings)

    def read_json(self, blob_name: str, max_bytes: int = 1 << 20) -> Any:
        """A small JSON blob's content; None when it does not exist. ValueError when it is
        larger than ``max_bytes`` or not JSON."""
        client = self.container.get_blob_client(blob_name)
        try:
            downloader = client.download_blob(offset=0, length=max_bytes + 1)
            data = downloader.readall()
        except ResourceNotFoundError:
            return None
        if len(data) > max_bytes:
            raise ValueError(f"{blob_name} is larger than {max_bytes} bytes")
        return json.loads(data)
