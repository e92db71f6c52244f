"""The product's settings: read from the environment once, validated, immutable.

Every name here is an app setting in Azure (infra/ sets each one) and an environment
variable locally (local.settings.json's Values). This module is the reading: which
settings there are, their defaults, and the order they are checked in (the first bad
one is the one reported). What a valid value of each one is, and the
:class:`~shared.settings.parse.ConfigError` that names a missing or malformed one, are
in shared.settings.parse; a secret's value never appears in such a message or in ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.rules.naming import ServiceId, find_service
from shared.rules.service import AccessType
from shared.settings import parse
from shared.settings.parse import ApiAuth, ArmCredentialKind, StorageConnection

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
    "CHANGE_QUIET_MINUTES",
    "CHANGE_MAX_DELAY_MINUTES",
    "CHANGE_BACKUPS_PER_DAY",
    "CHANGE_RPO_MINUTES",
    "OPERATION_TIMEOUT_MINUTES",
    "LEDGER_HISTORY_DAYS",
    "MAX_PARALLEL",
    "CERT_WARNING_DAYS",
    "DRILL_WARNING_DAYS",
    "ARM_ENDPOINT",
    "ARM_CREDENTIAL",
    "AZURE_CLIENT_ID",
    "API_AUTH",
)

# Platform settings read only to be refused when set (docs/settings.md): the timers must
# run in UTC. Not app settings of the product, so not in SETTING_NAMES.
REFUSED_SETTINGS: tuple[str, ...] = ("WEBSITE_TIME_ZONE", "TZ")


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
    # Change backups (docs/change-backups.md): the debounce, the daily cap, and how long
    # a change may stay unprotected before health says so (None: not watched).
    change_quiet_minutes: int
    change_max_delay_minutes: int
    change_backups_per_day: int
    change_rpo_minutes: int | None
    operation_timeout_minutes: int
    ledger_history_days: int
    max_parallel: int
    cert_warning_days: int
    drill_warning_days: int
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


def _services(env: Mapping[str, str]) -> tuple[tuple[ServiceId, ...], tuple[ServiceId, ...]]:
    """APIM_SERVICES, and RESTORE_TARGETS (the same services when it is not set)."""
    services = parse.service_list(
        parse.require(env, "APIM_SERVICES", "APIM resource IDs separated by commas"),
        "APIM_SERVICES",
    )
    raw_targets = parse.text(env, "RESTORE_TARGETS")
    targets = parse.service_list(raw_targets, "RESTORE_TARGETS") if raw_targets else services
    return services, targets


def _change_backups(env: Mapping[str, str]) -> tuple[int, int, int, int | None]:
    """CHANGE_QUIET_MINUTES (0: the next tick), CHANGE_MAX_DELAY_MINUTES, CHANGE_BACKUPS_PER_DAY
    (0: changes are recorded and shown, never backed up on their own; at most one per
    five-minute tick), and CHANGE_RPO_MINUTES (unset: off)."""
    raw_rpo = parse.text(env, "CHANGE_RPO_MINUTES")
    return (
        parse.whole_number(env, "CHANGE_QUIET_MINUTES", 15, 0, 24 * 60),
        parse.whole_number(env, "CHANGE_MAX_DELAY_MINUTES", 60, 1, 7 * 24 * 60),
        parse.whole_number(env, "CHANGE_BACKUPS_PER_DAY", 12, 0, 288),
        None
        if raw_rpo is None
        else parse.whole_number(env, "CHANGE_RPO_MINUTES", 0, 1, 30 * 24 * 60),
    )


def _read(env: Mapping[str, str]) -> Settings:
    """Every setting, in the order of the checks: services, where backups go and how
    APIM reaches them, tables, Resource Manager, storage, then schedules and limits."""
    services, targets = _services(env)
    parse.utc_timers(env)
    account = parse.storage_account(env)
    container = parse.container(env, default="apim-backups")
    access, identity_client_id, storage_key = parse.backup_access(env)
    ledger_table, operations_table = parse.tables(
        env, ledger_default="apimbackups", operations_default="apimoperations"
    )
    rpo_hours = parse.rpo_hours(env, default=26.0)
    quiet, max_delay, per_day, change_rpo = _change_backups(env)
    arm_endpoint = parse.endpoint(env, "ARM_ENDPOINT", "https://management.azure.com")
    arm_credential = parse.arm_credential(env, arm_endpoint)
    storage = parse.storage(env, account)
    parse.emulator_has_storage(arm_credential, storage)
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
        backup_schedule=parse.schedule(env, "BACKUP_SCHEDULE", "0 0 2 * * *"),
        housekeeping_schedule=parse.schedule(env, "HOUSEKEEPING_SCHEDULE", "0 */5 * * * *"),
        standby_pairs=parse.standby_pairs(parse.text(env, "STANDBY_PAIRS"), services, targets),
        standby_schedule=parse.schedule(env, "STANDBY_SCHEDULE", "0 0 4 * * *"),
        retention_days=parse.whole_number(env, "RETENTION_DAYS", 30, 1, 30),
        min_keep=parse.whole_number(env, "MIN_KEEP", 1, 0, 1000),
        rpo_hours=rpo_hours,
        change_quiet_minutes=quiet,
        change_max_delay_minutes=max_delay,
        change_backups_per_day=per_day,
        change_rpo_minutes=change_rpo,
        operation_timeout_minutes=parse.whole_number(
            env, "OPERATION_TIMEOUT_MINUTES", 240, 10, 24 * 60
        ),
        # At least the 30 days a backup is restorable, so that no row that still names a
        # restorable backup could ever be history; about 13 months by default (a year of
        # audit trail, plus a month).
        ledger_history_days=parse.whole_number(env, "LEDGER_HISTORY_DAYS", 400, 31, 3650),
        # 8: Resource Manager's write budget per subscription and hour is 1,200 requests,
        # and one start costs 3; 8 at once keeps a 50-service fleet's tick under a minute
        # without a burst that invites 429s. One Flex instance's worker has the threads.
        max_parallel=parse.whole_number(env, "MAX_PARALLEL", 8, 1, 64),
        cert_warning_days=parse.whole_number(env, "CERT_WARNING_DAYS", 30, 1, 365),
        # 7: a nightly standby sync has a week to succeed once before health warns.
        drill_warning_days=parse.whole_number(env, "DRILL_WARNING_DAYS", 7, 1, 365),
        arm_endpoint=arm_endpoint,
        arm_credential=arm_credential,
        azure_client_id=parse.text(env, "AZURE_CLIENT_ID"),
        api_auth=parse.api_auth_in_front(env),
    )
