"""The product's settings: read from the environment once, validated, immutable.

Every name here is an app setting in Azure (infra/ sets each one) and an environment
variable locally (local.settings.json's Values). A missing or malformed setting fails
with a :class:`ConfigError` that names it and says what was expected; a secret's value
never appears in such a message or in ``repr``.
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

# Every setting the product reads, in the order of docs/settings.md. The Bicep check in
# tests/ compares this tuple with the app settings the templates write.
SETTING_NAMES: tuple[str, ...] = (
    "APIM_SERVICES",
    "RESTORE_TARGETS",
    "BACKUP_STORAGE_ACCOUNT",
    "BACKUP_CONTAINER",
    "BACKUP_ACCESS_TYPE",
    "BACKUP_IDENTITY_CLIENT_ID",
    "BACKUP_STORAGE_KEY",
    "BACKUP_STORAGE",
    "BACKUP_STORAGE__blobServiceUri",
    "BACKUP_STORAGE__tableServiceUri",
    "BACKUP_STORAGE__clientId",
    "LEDGER_TABLE",
    "OPERATIONS_TABLE",
    "BACKUP_SCHEDULE",
    "HOUSEKEEPING_SCHEDULE",
    "STANDBY_PAIRS",
    "STANDBY_SCHEDULE",
    "RETENTION_DAYS",
    "MIN_KEEP",
    "RPO_HOURS",
    "OPERATION_TIMEOUT_MINUTES",
    "LEDGER_HISTORY_DAYS",
    "MAX_PARALLEL",
    "CERT_WARNING_DAYS",
    "ARM_ENDPOINT",
    "ARM_CREDENTIAL",
    "AZURE_CLIENT_ID",
    "API_AUTH",
)

_LIST_SEPARATORS = re.compile(r"[,;\s]+")
_CONTAINER_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class ConfigError(ValueError):
    """A setting is missing or malformed. The message names the setting."""

    def __init__(self, setting: str, expected: str) -> None:
        super().__init__(f"Setting {setting} is invalid: {expected}")
        self.setting = setting


class ApiAuth(StrEnum):
    """Who may call the HTTP API (shared/api/auth.py)."""

    FUNCTION_KEY = "functionKey"  # the Functions host checks function keys
    ENTRA = "entra"  # App Service authentication (Entra ID) in front; routes anonymous


def api_auth(env: Mapping[str, str]) -> ApiAuth:
    """API_AUTH, validated. Also read on its own by function_app.py at import time."""
    raw = _get(env, "API_AUTH")
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


def _platform_auth_enabled(env: Mapping[str, str]) -> bool:
    return (_get(env, PLATFORM_AUTH_VARIABLE) or "").lower() in ("true", "1")


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


@dataclass(frozen=True)
class Settings:
    apim_services: tuple[ServiceId, ...]
    restore_targets: tuple[ServiceId, ...]
    storage_account: str
    container: str
    access_type: AccessType
    identity_client_id: str | None
    storage_key: str | None = field(repr=False)
    storage: StorageConnection
    ledger_table: str
    operations_table: str
    backup_schedule: str
    housekeeping_schedule: str
    standby_pairs: tuple[tuple[ServiceId, ServiceId], ...]
    standby_schedule: str
    retention_days: int
    min_keep: int
    rpo_hours: float
    operation_timeout_minutes: int
    ledger_history_days: int
    max_parallel: int
    cert_warning_days: int
    arm_endpoint: str
    arm_credential: ArmCredentialKind
    azure_client_id: str | None
    api_auth: ApiAuth

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read and validate every setting; raise ConfigError naming the first bad one."""
        return _read(env)

    def find_service(self, name_or_id: str) -> ServiceId | None:
        """The configured service with this name or resource ID (case-insensitive)."""
        return find_service(self.apim_services, name_or_id)

    def find_restore_target(self, name_or_id: str) -> ServiceId | None:
        return find_service(self.restore_targets, name_or_id)


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _require(env: Mapping[str, str], name: str, expected: str) -> str:
    value = _get(env, name)
    if value is None:
        raise ConfigError(name, f"it is required ({expected})")
    return value


def _service_list(raw: str, setting: str) -> tuple[ServiceId, ...]:
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


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"expected a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"expected a whole number from {low} to {high}, got {value}")
    return value


def _schedule(env: Mapping[str, str], name: str, default: str) -> str:
    from shared.rules.ncrontab import parse as parse_schedule  # read once, when settings are

    value = _get(env, name) or default
    # NCRONTAB with seconds, as the Functions timer trigger expects: the host refuses to
    # load a function whose schedule it cannot parse, so refuse it here first, by name.
    try:
        parse_schedule(value)
    except ValueError as exc:
        raise ConfigError(name, f"expected a six-field NCRONTAB expression: {exc}") from None
    return value


def _endpoint(env: Mapping[str, str], name: str, default: str) -> str:
    value = (_get(env, name) or default).rstrip("/")
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


def _storage(env: Mapping[str, str], account: str) -> StorageConnection:
    conn = _get(env, "BACKUP_STORAGE")
    blob_uri = _get(env, "BACKUP_STORAGE__blobServiceUri")
    table_uri = _get(env, "BACKUP_STORAGE__tableServiceUri")
    client_id = _get(env, "BACKUP_STORAGE__clientId")
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
    if client_id is not None and not _GUID.match(client_id):
        raise ConfigError("BACKUP_STORAGE__clientId", "expected a client id (a GUID)")
    return StorageConnection(
        blob_service_uri=blob_uri, table_service_uri=table_uri, client_id=client_id
    )


def _standby_pairs(
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


def _read(env: Mapping[str, str]) -> Settings:
    services = _service_list(
        _require(env, "APIM_SERVICES", "APIM resource IDs separated by commas"), "APIM_SERVICES"
    )
    raw_targets = _get(env, "RESTORE_TARGETS")
    targets = _service_list(raw_targets, "RESTORE_TARGETS") if raw_targets else services

    account = _require(env, "BACKUP_STORAGE_ACCOUNT", "the storage account's name")
    if not _ACCOUNT_NAME.match(account):
        raise ConfigError(
            "BACKUP_STORAGE_ACCOUNT", "expected 3 to 24 lower-case letters and digits"
        )
    container = _get(env, "BACKUP_CONTAINER") or "apim-backups"
    if not _CONTAINER_NAME.match(container):
        raise ConfigError(
            "BACKUP_CONTAINER", "expected a blob container name (3-63 of a-z, 0-9, -)"
        )

    raw_access = _get(env, "BACKUP_ACCESS_TYPE") or AccessType.SYSTEM_ASSIGNED.value
    try:
        access = AccessType(raw_access)
    except ValueError:
        allowed = ", ".join(a.value for a in AccessType)
        raise ConfigError("BACKUP_ACCESS_TYPE", f"expected one of {allowed}") from None
    identity_client_id = _get(env, "BACKUP_IDENTITY_CLIENT_ID")
    if access is AccessType.USER_ASSIGNED:
        if identity_client_id is None:
            raise ConfigError(
                "BACKUP_IDENTITY_CLIENT_ID", "it is required with UserAssignedManagedIdentity"
            )
        if not _GUID.match(identity_client_id):
            raise ConfigError("BACKUP_IDENTITY_CLIENT_ID", "expected a client id (a GUID)")
    storage_key = _get(env, "BACKUP_STORAGE_KEY")
    if access is AccessType.ACCESS_KEY and storage_key is None:
        raise ConfigError("BACKUP_STORAGE_KEY", "it is required with AccessKey")

    ledger_table = _get(env, "LEDGER_TABLE") or "apimbackups"
    operations_table = _get(env, "OPERATIONS_TABLE") or "apimoperations"
    for name, table in (("LEDGER_TABLE", ledger_table), ("OPERATIONS_TABLE", operations_table)):
        if not _TABLE_NAME.match(table):
            raise ConfigError(name, "expected a table name: a letter, then 2-62 letters or digits")
    if ledger_table.lower() == operations_table.lower():
        raise ConfigError("OPERATIONS_TABLE", "must differ from LEDGER_TABLE")

    raw_rpo = _get(env, "RPO_HOURS")
    rpo_hours = 26.0
    if raw_rpo is not None:
        try:
            rpo_hours = float(raw_rpo)
        except ValueError:
            raise ConfigError("RPO_HOURS", "expected a number of hours") from None
        if not 0 < rpo_hours <= 24 * 30:
            raise ConfigError("RPO_HOURS", "expected more than 0 and at most 720 hours")

    arm_endpoint = _endpoint(env, "ARM_ENDPOINT", "https://management.azure.com")
    raw_cred = (_get(env, "ARM_CREDENTIAL") or ArmCredentialKind.MANAGED_IDENTITY.value).lower()
    try:
        arm_credential = ArmCredentialKind(raw_cred)
    except ValueError:
        allowed = ", ".join(k.value for k in ArmCredentialKind)
        raise ConfigError("ARM_CREDENTIAL", f"expected one of {allowed}") from None
    if arm_credential is ArmCredentialKind.EMULATOR and not is_loopback(arm_endpoint):
        raise ConfigError(
            "ARM_CREDENTIAL", "'emulator' is only allowed when ARM_ENDPOINT is a loopback address"
        )

    storage = _storage(env, account)
    if (
        arm_credential is ArmCredentialKind.EMULATOR
        and storage.uses_identity
        and not storage.client_id
    ):
        raise ConfigError(
            "ARM_CREDENTIAL",
            "'emulator' has no storage token: set BACKUP_STORAGE to a connection string, "
            "or BACKUP_STORAGE__clientId",
        )
    return Settings(
        apim_services=services,
        restore_targets=targets,
        storage_account=account,
        container=container,
        access_type=access,
        identity_client_id=identity_client_id,
        storage_key=storage_key,
        storage=storage,
        ledger_table=ledger_table,
        operations_table=operations_table,
        backup_schedule=_schedule(env, "BACKUP_SCHEDULE", "0 0 2 * * *"),
        housekeeping_schedule=_schedule(env, "HOUSEKEEPING_SCHEDULE", "0 */5 * * * *"),
        standby_pairs=_standby_pairs(_get(env, "STANDBY_PAIRS"), services, targets),
        standby_schedule=_schedule(env, "STANDBY_SCHEDULE", "0 0 4 * * *"),
        retention_days=_int(env, "RETENTION_DAYS", 30, 1, 30),
        min_keep=_int(env, "MIN_KEEP", 1, 0, 1000),
        rpo_hours=rpo_hours,
        operation_timeout_minutes=_int(env, "OPERATION_TIMEOUT_MINUTES", 240, 10, 24 * 60),
        # At least the 30 days a backup is restorable, so that no row that still names a
        # restorable backup could ever be history; about 13 months by default (a year of
        # audit trail, plus a month).
        ledger_history_days=_int(env, "LEDGER_HISTORY_DAYS", 400, 31, 3650),
        # 8: Resource Manager's write budget per subscription and hour is 1,200 requests,
        # and one start costs 3; 8 at once keeps a 50-service fleet's tick under a minute
        # without a burst that invites 429s. One Flex instance's worker has the threads.
        max_parallel=_int(env, "MAX_PARALLEL", 8, 1, 64),
        cert_warning_days=_int(env, "CERT_WARNING_DAYS", 30, 1, 365),
        arm_endpoint=arm_endpoint,
        arm_credential=arm_credential,
        azure_client_id=_get(env, "AZURE_CLIENT_ID"),
        api_auth=_api_auth_in_front(env),
    )


def _api_auth_in_front(env: Mapping[str, str]) -> ApiAuth:
    mode = api_auth(env)
    if mode is ApiAuth.ENTRA and not _platform_auth_enabled(env):
        # Fail closed: without the platform in front, the routes are anonymous and the
        # principal header could be forged by any caller.
        raise ConfigError(
            "API_AUTH",
            "'entra' needs App Service authentication in front of the app "
            "(WEBSITE_AUTH_ENABLED is not true); deploy with apiAuth=entra (infra/README.md)",
        )
    return mode
