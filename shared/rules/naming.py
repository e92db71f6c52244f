"""Names: APIM resource IDs and backup names (``<service>-<YYYYMMDD>T<HHMMSS>Z.apimbackup``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

BACKUP_SUFFIX = ".apimbackup"

_RESOURCE_ID = re.compile(
    r"/subscriptions/(?P<sub>[0-9A-Fa-f-]{36})"
    r"/resourceGroups/(?P<rg>[-\w._()]{1,90})"
    r"/providers/Microsoft\.ApiManagement/service/(?P<name>[A-Za-z][A-Za-z0-9-]{0,48}[A-Za-z0-9])",
    re.IGNORECASE,
)
_BACKUP_NAME = re.compile(
    r"(?P<service>[a-z][a-z0-9-]{0,48}[a-z0-9])-(?P<stamp>\d{8}T\d{6}Z)\.apimbackup"
)
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class ServiceId:
    """An APIM service's Resource Manager identity."""

    subscription_id: str
    resource_group: str
    name: str

    @classmethod
    def parse(cls, resource_id: str) -> ServiceId:
        match = _RESOURCE_ID.fullmatch(resource_id.strip().rstrip("/"))
        if match is None:
            raise ValueError(
                "expected an APIM resource ID: /subscriptions/<sub>/resourceGroups/<rg>"
                f"/providers/Microsoft.ApiManagement/service/<name>, got '{resource_id.strip()}'"
            )
        return cls(match["sub"].lower(), match["rg"], match["name"])

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ApiManagement/service/{self.name}"
        )

    @property
    def key(self) -> str:
        """The ledger partition and lock key: the service name in lower case."""
        return self.name.lower()

    def __str__(self) -> str:
        return self.name


def backup_name(service: str, started_at: datetime) -> str:
    """The backup (and blob) name for a backup of ``service`` started at ``started_at``."""
    if started_at.tzinfo is None:
        raise ValueError("started_at must be timezone-aware")
    stamp = started_at.astimezone(UTC).strftime(_STAMP)
    return f"{service.lower()}-{stamp}{BACKUP_SUFFIX}"


@dataclass(frozen=True)
class ParsedBackupName:
    service: str
    started_at: datetime


def parse_backup_name(name: str) -> ParsedBackupName:
    """Split a backup name; ValueError when it is not of the backup-name form."""
    match = _BACKUP_NAME.fullmatch(name)
    if match is None:
        raise ValueError(
            f"'{name[:100]}' is not a backup name (<service>-YYYYMMDDTHHMMSSZ.apimbackup)"
        )
    try:
        started = datetime.strptime(match["stamp"], _STAMP).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"'{name[:100]}' has an invalid timestamp") from None
    return ParsedBackupName(match["service"], started)


def is_backup_name(name: str) -> bool:
    try:
        parse_backup_name(name)
    except ValueError:
        return False
    return True


def next_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def find_service(services: Sequence[ServiceId], name_or_id: str) -> ServiceId | None:
    """The service among these with this name or resource ID (case-insensitive)."""
    wanted = name_or_id.strip().lower()
    for service in services:
        if wanted in (service.name.lower(), service.resource_id.lower()):
            return service
    return None


@dataclass(frozen=True)
class AccountRef:
    subscription_id: str
    resource_group: str
    name: str

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Storage/storageAccounts/{self.name}"
        )


def storage_account_ref(text: str, account: str) -> AccountRef:
    """The backup account's resource ID (``--storage-account-id``), checked to name the
    account BACKUP_STORAGE_ACCOUNT names. ValueError says what is wrong."""
    parts = text.strip().strip("/").split("/")
    shape = ["subscriptions", None, "resourcegroups", None, "providers", None, None, None]
    if len(parts) != len(shape) or any(
        want is not None and part.lower() != want for part, want in zip(parts, shape, strict=True)
    ):
        raise ValueError(
            "expected /subscriptions/<id>/resourceGroups/<rg>/providers/"
            "Microsoft.Storage/storageAccounts/<name>"
        )
    if f"{parts[5]}/{parts[6]}".lower() != "microsoft.storage/storageaccounts":
        raise ValueError(f"{parts[5]}/{parts[6]} is not Microsoft.Storage/storageAccounts")
    if parts[7].lower() != account.lower():
        raise ValueError(f"it names account {parts[7]}, but BACKUP_STORAGE_ACCOUNT is {account}")
    return AccountRef(parts[1], parts[3], parts[7])
