"""Blob Storage adapter for what the core needs to know about the backup account, and the
container's listing and batched deletes that pruning and the history pass need."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

log = logging.getLogger(__name__)

_NOT_PERMITTED = frozenset({"AuthorizationPermissionMismatch", "AuthorizationFailure"})

BLOB_BATCH_SIZE = 256  # the Blob batch API's limit per request


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

    def names(self) -> list[str]:
        """The container's blob names (one paged listing); none when the container does
        not exist (yet): APIM creates it with the first backup, and a pass must not fail
        before that."""
        try:
            return list(self.container.list_blob_names())
        except ResourceNotFoundError:
            return []

    def delete_batched(self, names: Sequence[str]) -> dict[str, str]:
        """Delete the blobs (and their snapshots) in batches of BLOB_BATCH_SIZE; answer the
        names that could not be deleted, with why. A blob already gone (404) counts as
        deleted."""
        failures: dict[str, str] = {}
        for start in range(0, len(names), BLOB_BATCH_SIZE):
            chunk = names[start : start + BLOB_BATCH_SIZE]
            try:
                parts = list(
                    self.container.delete_blobs(
                        *chunk, delete_snapshots="include", raise_on_any_failure=False
                    )
                )
            except AzureError as exc:
                for name in chunk:
                    failures[name] = f"batch delete failed: {exc.__class__.__name__}"
                log.warning(
                    "Batch delete of %d blobs failed: %s", len(chunk), exc.__class__.__name__
                )
                continue
            # The service answers the sub-requests in the order they were sent.
            for name, part in zip(chunk, parts, strict=True):
                if part.status_code in (200, 202, 404):
                    continue
                code = part.headers.get("x-ms-error-code", "")
                failures[name] = f"blob delete failed: {part.status_code} {code}".strip()
                log.warning("Could not delete blob %s: %s %s", name, part.status_code, code)
        return failures
