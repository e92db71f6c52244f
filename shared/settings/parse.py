"""What a valid value of each setting is: the parsers that turn a setting's text into a
checked value, and the :class:`ConfigError` that names the setting when it is not.

Kept apart from the reading (shared.settings: which settings, their defaults, their
order) so that a rule about one setting's value is found in one place. Nothing here
reads a setting the caller did not name; a secret's value never appears in a message.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

from shared.rules.naming import ServiceId, find_service
from shared.rules.service import AccessType

_LIST_SEPARATORS = re.compile(r"[,;\s]+")
_CONTAINER_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


class ConfigError(ValueError):
    """A setting is missing or malformed. The message names the setting."""

    def __init__(self, setting: str, expected: str) -> None:
        super().__init__(f"Setting {setting} is invalid: {expected}")
        self.setting = setting


class ApiAuth(StrEnum):
    """Who may call the HTTP API (shared/api/auth.py)."""

    FUNCTION_KEY = "functionKey"  # the Functions host checks function keys
    ENTRA = "entra"  # App Service authentication (Entra ID) in front; routes anonymous


class ArmCredentialKind(StrEnum):
    MANAGED_IDENTITY = "managedidentity"
    DEFAULT = "default"
    EMULATOR = "emulator"


@dataclass(frozen=True)
class StorageConnection:
    """How the function reaches the backup account's blobs and tables."""

    connection_string: str | None = field(default=None, repr=False)
    blob_service_uri: str | None = None
    table_service_uri: str | None = None
    client_id: str | None = None

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None


def text(env: Mapping[str, str], name: str) -> str | None:
    """The setting's text, stripped; None when it is not set or blank."""
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def require(env: Mapping[str, str], name: str, expected: str) -> str:
    value = text(env, name)
    if value is None:
        raise ConfigError(name, f"it is required ({expected})")
    return value


def api_auth(env: Mapping[str, str]) -> ApiAuth:
    """API_AUTH, validated. Also read on its own by function_app.py at import time."""
    raw = text(env, "API_AUTH")
    if raw is None:
        return ApiAuth.FUNCTION_KEY
    for mode in ApiAuth:
        if raw.lower() == mode.value.lower():
            return mode
    allowed = ", ".join(m.value for m in ApiAuth)
    raise ConfigError("API_AUTH", f"expected one of {allowed}")


# Not an app setting (so not in SETTING_NAMES): App Service injects it, read-only, when
# its authentication is on; only then does the platform strip a caller's own
# X-MS-CLIENT-PRINCIPAL header.
PLATFORM_AUTH_VARIABLE = "WEBSITE_AUTH_ENABLED"


def api_auth_in_front(env: Mapping[str, str]) -> ApiAuth:
    """API_AUTH, and the platform's authentication in front of the app when it says so."""
    mode = api_auth(env)
    platform_auth = (text(env, PLATFORM_AUTH_VARIABLE) or "").lower() in ("true", "1")
    if mode is ApiAuth.ENTRA and not platform_auth:
        # Fail closed: without the platform in front, the routes are anonymous and the
        # principal header could be forged by any caller.
        raise ConfigError(
            "API_AUTH",
            "'entra' needs App Service authentication in front of the app "
            "(WEBSITE_AUTH_ENABLED is not true); deploy with apiAuth=entra (infra/README.md)",
        )
    return mode


def service_list(raw: str, setting: str) -> tuple[ServiceId, ...]:
    services: list[ServiceId] = []
    for item in _LIST_SEPARATORS.split(raw):
        if not item:
            continue
        try:
            service = ServiceId.parse(item)
        except ValueError as exc:
            raise ConfigError(setting, str(exc)) from None
        if any(s.name.lower() == service.name.lower() for s in services):
            # Ledger partitions are keyed by service name: two services with one name
            # would share a history.
            raise ConfigError(setting, f"service name '{service.name}' appears twice")
        services.append(service)
    if not services:
        raise ConfigError(setting, "expected at least one APIM resource ID")
    return tuple(services)


def whole_number(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"expected a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"expected a whole number from {low} to {high}, got {value}")
    return value


def rpo_hours(env: Mapping[str, str], default: float) -> float:
    raw = text(env, "RPO_HOURS")
    if raw is None:
        return default
    try:
        hours = float(raw)
    except ValueError:
        raise ConfigError("RPO_HOURS", "expected a number of hours") from None
    if not 0 < hours <= 24 * 30:
        raise ConfigError("RPO_HOURS", "expected more than 0 and at most 720 hours")
    return hours


def schedule(env: Mapping[str, str], name: str, default: str) -> str:
    from shared.rules.ncrontab import parse as parse_schedule  # read once, when settings are

    value = text(env, name) or default
    # NCRONTAB with seconds, as the Functions timer trigger expects: the host refuses to
    # load a function whose schedule it cannot parse, so refuse it here first, by name.
    try:
        parse_schedule(value)
    except ValueError as exc:
        raise ConfigError(name, f"expected a six-field NCRONTAB expression: {exc}") from None
    return value


# TZ values that mean UTC. Anything else would move the timers off UTC where a plan
# honours it (Linux Premium, Dedicated) and break the missed-run inference, which reads
# BACKUP_SCHEDULE in UTC; Linux Consumption and Flex do not support either setting.
_UTC_TZ = frozenset({"UTC", "Etc/UTC", ":UTC", "UTC0", ":Etc/UTC"})


def utc_timers(env: Mapping[str, str]) -> None:
    """ConfigError unless the timers run in UTC: WEBSITE_TIME_ZONE unset, TZ unset or UTC."""
    if text(env, "WEBSITE_TIME_ZONE") is not None:
        raise ConfigError(
            "WEBSITE_TIME_ZONE",
            "the schedules are read in UTC (missed runs are found by BACKUP_SCHEDULE's "
            "UTC firing times); remove it and write the schedules in UTC",
        )
    tz = text(env, "TZ")
    if tz is not None and tz not in _UTC_TZ:
        raise ConfigError(
            "TZ",
            f"expected UTC or unset: the schedules are read in UTC; remove it (or set UTC) "
            f"and write the schedules in UTC, got {tz!r}",
        )


def endpoint(env: Mapping[str, str], name: str, default: str) -> str:
    value = (text(env, name) or default).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(name, "expected an https:// URL")
    return value


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def arm_credential(env: Mapping[str, str], arm_endpoint: str) -> ArmCredentialKind:
    raw = (text(env, "ARM_CREDENTIAL") or ArmCredentialKind.MANAGED_IDENTITY.value).lower()
    try:
        kind = ArmCredentialKind(raw)
    except ValueError:
        allowed = ", ".join(k.value for k in ArmCredentialKind)
        raise ConfigError("ARM_CREDENTIAL", f"expected one of {allowed}") from None
    if kind is ArmCredentialKind.EMULATOR and not is_loopback(arm_endpoint):
        raise ConfigError(
            "ARM_CREDENTIAL", "'emulator' is only allowed when ARM_ENDPOINT is a loopback address"
        )
    return kind


def storage_account(env: Mapping[str, str]) -> str:
    account = require(env, "BACKUP_STORAGE_ACCOUNT", "the storage account's name")
    if not _ACCOUNT_NAME.fullmatch(account):
        raise ConfigError(
            "BACKUP_STORAGE_ACCOUNT", "expected 3 to 24 lower-case letters and digits"
        )
    return account


def container(env: Mapping[str, str], default: str) -> str:
    name = text(env, "BACKUP_CONTAINER") or default
    if not _CONTAINER_NAME.fullmatch(name):
        raise ConfigError(
            "BACKUP_CONTAINER", "expected a blob container name (3-63 of a-z, 0-9, -)"
        )
    return name


def backup_access(env: Mapping[str, str]) -> tuple[AccessType, str | None, str | None]:
    """How APIM reaches the backup container: the access type, the user-assigned
    identity's client id and the account key (each only where the type needs it)."""
    raw_access = text(env, "BACKUP_ACCESS_TYPE") or AccessType.SYSTEM_ASSIGNED.value
    try:
        access = AccessType(raw_access)
    except ValueError:
        allowed = ", ".join(a.value for a in AccessType)
        raise ConfigError("BACKUP_ACCESS_TYPE", f"expected one of {allowed}") from None
    identity_client_id = text(env, "BACKUP_IDENTITY_CLIENT_ID")
    if access is AccessType.USER_ASSIGNED:
        if identity_client_id is None:
            raise ConfigError(
                "BACKUP_IDENTITY_CLIENT_ID", "it is required with UserAssignedManagedIdentity"
            )
        if not _GUID.fullmatch(identity_client_id):
            raise ConfigError("BACKUP_IDENTITY_CLIENT_ID", "expected a client id (a GUID)")
    storage_key = text(env, "BACKUP_STORAGE_KEY")
    if access is AccessType.ACCESS_KEY and storage_key is None:
        raise ConfigError("BACKUP_STORAGE_KEY", "it is required with AccessKey")
    return access, identity_client_id, storage_key


def tables(env: Mapping[str, str], ledger_default: str, operations_default: str) -> tuple[str, str]:
    """LEDGER_TABLE and OPERATIONS_TABLE: two valid table names, not one table twice."""
    ledger_table = text(env, "LEDGER_TABLE") or ledger_default
    operations_table = text(env, "OPERATIONS_TABLE") or operations_default
    for name, table in (("LEDGER_TABLE", ledger_table), ("OPERATIONS_TABLE", operations_table)):
        if not _TABLE_NAME.fullmatch(table):
            raise ConfigError(name, "expected a table name: a letter, then 2-62 letters or digits")
    if ledger_table.lower() == operations_table.lower():
        raise ConfigError("OPERATIONS_TABLE", "must differ from LEDGER_TABLE")
    return ledger_table, operations_table


def _connection_account(conn: str) -> str | None:
    """The account a connection string names (never echoing the string: it holds a key)."""
    parts = {
        key.strip().lower(): value.strip()
        for key, _, value in (p.partition("=") for p in conn.split(";"))
        if key.strip()
    }
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return "devstoreaccount1"
    return parts.get("accountname")


def _uri_account(uri: str) -> str:
    """The account a service URL points at: the host's first label, or on loopback
    (Azurite) the path's first segment."""
    parts = urlsplit(uri)
    if is_loopback(uri):
        return parts.path.strip("/").split("/")[0]
    return (parts.hostname or "").split(".")[0]


def storage(env: Mapping[str, str], account: str) -> StorageConnection:
    conn = text(env, "BACKUP_STORAGE")
    blob_uri = text(env, "BACKUP_STORAGE__blobServiceUri")
    table_uri = text(env, "BACKUP_STORAGE__tableServiceUri")
    client_id = text(env, "BACKUP_STORAGE__clientId")
    # APIM writes into BACKUP_STORAGE_ACCOUNT and the function reads the same blobs back:
    # pointing the two at different accounts would fail every backup as "blob missing".
    mismatch = "is for account '{}', but BACKUP_STORAGE_ACCOUNT is '{}'"
    if conn is not None:
        if "=" not in conn:
            raise ConfigError(
                "BACKUP_STORAGE",
                "expected a storage connection string (e.g. UseDevelopmentStorage=true)",
            )
        named = _connection_account(conn)
        if named is not None and named != account:
            raise ConfigError("BACKUP_STORAGE", mismatch.format(named, account))
        return StorageConnection(connection_string=conn)
    if blob_uri is None or table_uri is None:
        raise ConfigError(
            "BACKUP_STORAGE",
            "set a connection string, or both BACKUP_STORAGE__blobServiceUri and "
            "BACKUP_STORAGE__tableServiceUri for identity-based access",
        )
    for name, uri in (
        ("BACKUP_STORAGE__blobServiceUri", blob_uri),
        ("BACKUP_STORAGE__tableServiceUri", table_uri),
    ):
        if urlsplit(uri).scheme != "https" or not urlsplit(uri).hostname:
            # Tokens are only ever sent over TLS (the SDK refuses otherwise, late).
            raise ConfigError(
                name,
                "expected the service's https URL, e.g. https://<account>.blob.core.windows.net",
            )
        if _uri_account(uri) != account:
            raise ConfigError(name, mismatch.format(_uri_account(uri), account))
    if client_id is not None and not _GUID.fullmatch(client_id):
        raise ConfigError("BACKUP_STORAGE__clientId", "expected a client id (a GUID)")
    return StorageConnection(
        blob_service_uri=blob_uri, table_service_uri=table_uri, client_id=client_id
    )


def emulator_has_storage(credential: ArmCredentialKind, connection: StorageConnection) -> None:
    """The emulator's credential has no storage token: storage needs another way in."""
    if (
        credential is ArmCredentialKind.EMULATOR
        and connection.uses_identity
        and not connection.client_id
    ):
        raise ConfigError(
            "ARM_CREDENTIAL",
            "'emulator' has no storage token: set BACKUP_STORAGE to a connection string, "
            "or BACKUP_STORAGE__clientId",
        )


def standby_pairs(
    raw: str | None, sources: tuple[ServiceId, ...], targets: tuple[ServiceId, ...]
) -> tuple[tuple[ServiceId, ServiceId], ...]:
    if raw is None:
        return ()
    pairs: list[tuple[ServiceId, ServiceId]] = []
    for item in raw.split(","):
        if not item.strip():
            continue
        left, sep, right = item.partition("=>")
        if not sep or not left.strip() or not right.strip():
            raise ConfigError(
                "STANDBY_PAIRS", f"expected '<source>=><standby>', got '{item.strip()}'"
            )
        source = find_service(sources, left)
        if source is None:
            raise ConfigError("STANDBY_PAIRS", f"source '{left.strip()}' is not in APIM_SERVICES")
        standby = find_service(targets, right)
        if standby is None:
            raise ConfigError(
                "STANDBY_PAIRS", f"standby '{right.strip()}' is not in RESTORE_TARGETS"
            )
        if standby == source:
            raise ConfigError("STANDBY_PAIRS", f"'{source.name}' cannot be its own standby")
        pairs.append((source, standby))
    return tuple(pairs)
