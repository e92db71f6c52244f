from __future__ import annotations

import pytest

from shared.rules.service import AccessType
from shared.settings import Settings
from shared.settings.parse import ArmCredentialKind, ConfigError

SUB = "00000000-0000-0000-0000-000000000001"


def rid(name: str, rg: str = "rg-apim") -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{name}"
    )


BASE = {
    "APIM_SERVICES": rid("contoso-apim"),
    "BACKUP_STORAGE_ACCOUNT": "devstoreaccount1",
    "BACKUP_STORAGE": "UseDevelopmentStorage=true",
}


def settings(**overrides: str) -> Settings:
    return Settings.from_env({**BASE, **overrides})


def test_defaults_follow_the_contract():
    s = settings()
    assert [x.name for x in s.apim_services] == ["contoso-apim"]
    assert s.restore_targets == s.apim_services
    assert s.container == "apim-backups"
    assert s.access_type is AccessType.SYSTEM_ASSIGNED
    assert (s.ledger_table, s.operations_table) == ("apimbackups", "apimoperations")
    assert (s.backup_schedule, s.housekeeping_schedule, s.standby_schedule) == (
        "0 0 2 * * *",
        "0 */5 * * * *",
        "0 0 4 * * *",
    )
    assert (s.retention_days, s.min_keep, s.rpo_hours) == (30, 1, 26.0)
    assert (s.change_quiet_minutes, s.change_max_delay_minutes) == (15, 60)
    assert (s.change_backups_per_day, s.change_rpo_minutes) == (12, None)
    assert s.arm_endpoint == "https://management.azure.com"
    assert s.arm_credential is ArmCredentialKind.MANAGED_IDENTITY
    assert s.standby_pairs == ()


def test_change_backup_settings_read_and_blank_rpo_is_off():
    s = settings(
        CHANGE_QUIET_MINUTES="0",
        CHANGE_MAX_DELAY_MINUTES="30",
        CHANGE_BACKUPS_PER_DAY="0",
        CHANGE_RPO_MINUTES="90",
    )
    assert (s.change_quiet_minutes, s.change_max_delay_minutes) == (0, 30)
    assert (s.change_backups_per_day, s.change_rpo_minutes) == (0, 90)
    assert settings(CHANGE_RPO_MINUTES=" ").change_rpo_minutes is None


def test_service_lists_accept_commas_semicolons_and_whitespace():
    s = settings(APIM_SERVICES=f"{rid('a-one')}, {rid('b-two')};{rid('c-three')}\n {rid('d-four')}")
    assert [x.name for x in s.apim_services] == ["a-one", "b-two", "c-three", "d-four"]
    assert s.apim_services[1].resource_group == "rg-apim"
    assert s.find_service("B-TWO") == s.apim_services[1]
    assert s.find_service(rid("c-three").upper().replace("SERVICE", "service")) is not None


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"APIM_SERVICES": ""}, "APIM_SERVICES"),
        ({"APIM_SERVICES": "contoso-apim"}, "APIM_SERVICES"),
        ({"APIM_SERVICES": f"{rid('x1')},{rid('x1', 'other')}"}, "APIM_SERVICES"),
        ({"RESTORE_TARGETS": "/subscriptions/nope"}, "RESTORE_TARGETS"),
        ({"BACKUP_STORAGE_ACCOUNT": "Bad_Name"}, "BACKUP_STORAGE_ACCOUNT"),
        ({"BACKUP_CONTAINER": "UPPER"}, "BACKUP_CONTAINER"),
        ({"BACKUP_ACCESS_TYPE": "Password"}, "BACKUP_ACCESS_TYPE"),
        ({"BACKUP_ACCESS_TYPE": "UserAssignedManagedIdentity"}, "BACKUP_IDENTITY_CLIENT_ID"),
        (
            {"BACKUP_ACCESS_TYPE": "UserAssignedManagedIdentity", "BACKUP_IDENTITY_CLIENT_ID": "x"},
            "BACKUP_IDENTITY_CLIENT_ID",
        ),
        ({"BACKUP_ACCESS_TYPE": "AccessKey"}, "BACKUP_STORAGE_KEY"),
        ({"BACKUP_STORAGE": ""}, "BACKUP_STORAGE"),
        ({"LEDGER_TABLE": "1bad"}, "LEDGER_TABLE"),
        ({"OPERATIONS_TABLE": "apimbackups"}, "OPERATIONS_TABLE"),
        ({"BACKUP_SCHEDULE": "0 2 * * *"}, "BACKUP_SCHEDULE"),
        # Six fields, but an hour the host's parser refuses: caught here, not at indexing.
        ({"BACKUP_SCHEDULE": "0 0 25 * * *"}, "BACKUP_SCHEDULE"),
        ({"HOUSEKEEPING_SCHEDULE": "0 */0 * * * *"}, "HOUSEKEEPING_SCHEDULE"),
        ({"RETENTION_DAYS": "31"}, "RETENTION_DAYS"),
        ({"RETENTION_DAYS": "ten"}, "RETENTION_DAYS"),
        ({"MIN_KEEP": "-1"}, "MIN_KEEP"),
        ({"RPO_HOURS": "0"}, "RPO_HOURS"),
        ({"CHANGE_QUIET_MINUTES": "-1"}, "CHANGE_QUIET_MINUTES"),
        ({"CHANGE_MAX_DELAY_MINUTES": "0"}, "CHANGE_MAX_DELAY_MINUTES"),
        ({"CHANGE_BACKUPS_PER_DAY": "289"}, "CHANGE_BACKUPS_PER_DAY"),
        ({"CHANGE_RPO_MINUTES": "0"}, "CHANGE_RPO_MINUTES"),
        ({"CHANGE_RPO_MINUTES": "soon"}, "CHANGE_RPO_MINUTES"),
        # History shorter than a backup's 30 restorable days could delete live rows.
        ({"LEDGER_HISTORY_DAYS": "30"}, "LEDGER_HISTORY_DAYS"),
        ({"MAX_PARALLEL": "0"}, "MAX_PARALLEL"),
        ({"MAX_PARALLEL": "many"}, "MAX_PARALLEL"),
        ({"CERT_WARNING_DAYS": "0"}, "CERT_WARNING_DAYS"),
        ({"DRILL_WARNING_DAYS": "0"}, "DRILL_WARNING_DAYS"),
        ({"DRILL_WARNING_DAYS": "seven"}, "DRILL_WARNING_DAYS"),
        ({"ARM_ENDPOINT": "http://management.azure.com"}, "ARM_ENDPOINT"),
        ({"ARM_CREDENTIAL": "password"}, "ARM_CREDENTIAL"),
        ({"ARM_CREDENTIAL": "emulator"}, "ARM_CREDENTIAL"),
        ({"STANDBY_PAIRS": "contoso-apim"}, "STANDBY_PAIRS"),
        ({"STANDBY_PAIRS": "contoso-apim=>elsewhere"}, "STANDBY_PAIRS"),
    ],
)
def test_a_bad_setting_is_named(overrides: dict[str, str], setting: str):
    with pytest.raises(ConfigError) as caught:
        settings(**overrides)
    assert caught.value.setting == setting
    assert setting in str(caught.value)


def test_emulator_credential_only_on_loopback():
    s = settings(ARM_CREDENTIAL="emulator", ARM_ENDPOINT="https://127.0.0.1:8443/")
    assert s.arm_credential is ArmCredentialKind.EMULATOR
    assert s.arm_endpoint == "https://127.0.0.1:8443"


def test_standby_pairs_by_name_or_id():
    s = settings(
        APIM_SERVICES=rid("contoso-apim"),
        RESTORE_TARGETS=f"{rid('contoso-apim')},{rid('contoso-standby')}",
        STANDBY_PAIRS=f"contoso-apim=>{rid('contoso-standby')}",
    )
    assert [(a.name, b.name) for a, b in s.standby_pairs] == [("contoso-apim", "contoso-standby")]


def test_secrets_never_appear_in_repr_or_errors():
    key = "c2VjcmV0LWtleS12YWx1ZS10aGF0LW11c3Qtbm90LWxlYWs="
    conn = f"DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey={key}"
    s = settings(BACKUP_ACCESS_TYPE="AccessKey", BACKUP_STORAGE_KEY=key, BACKUP_STORAGE=conn)
    assert key not in repr(s)
    with pytest.raises(ConfigError) as caught:
        settings(BACKUP_STORAGE_KEY=key, BACKUP_STORAGE=conn, RETENTION_DAYS="99")
    assert key not in str(caught.value)


def test_identity_based_storage_needs_both_uris():
    env = {k: v for k, v in BASE.items() if k != "BACKUP_STORAGE"}
    with pytest.raises(ConfigError, match="BACKUP_STORAGE"):
        Settings.from_env(
            {
                **env,
                "BACKUP_STORAGE__blobServiceUri": "https://devstoreaccount1.blob.core.windows.net",
            }
        )
    s = Settings.from_env(
        {
            **env,
            "BACKUP_STORAGE__blobServiceUri": "https://devstoreaccount1.blob.core.windows.net",
            "BACKUP_STORAGE__tableServiceUri": "https://devstoreaccount1.table.core.windows.net",
        }
    )
    assert s.storage.uses_identity


def test_setting_names_list_every_name_the_code_reads():
    """SETTING_NAMES (which the Bicep check compares with the app settings) must be what
    the code really reads, not a list kept by hand beside it."""
    import re
    from pathlib import Path

    import shared

    package = Path(shared.__file__).parent
    read: set[str] = set()
    for source in package.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        read |= set(re.findall(r"\(\s*env,\s*\"([A-Za-z_]+)\"", text))
        read |= set(re.findall(r"environ(?:\.get)?\(\s*\"([A-Z][A-Za-z_]+)\"", text))
    assert read, "the scan found nothing: the pattern is out of date"
    from shared.settings import REFUSED_SETTINGS, SETTING_NAMES

    assert read == set(SETTING_NAMES) | set(REFUSED_SETTINGS)


IDENTITY = {
    "APIM_SERVICES": BASE["APIM_SERVICES"],
    "BACKUP_STORAGE_ACCOUNT": "backupsacct",
    "BACKUP_STORAGE__blobServiceUri": "https://backupsacct.blob.core.windows.net",
    "BACKUP_STORAGE__tableServiceUri": "https://backupsacct.table.core.windows.net",
}


@pytest.mark.parametrize(
    ("overrides", "setting", "words"),
    [
        # Tokens only over TLS: caught here, not by the SDK on first use.
        (
            {"BACKUP_STORAGE__blobServiceUri": "http://backupsacct.blob.core.windows.net"},
            "BACKUP_STORAGE__blobServiceUri",
            "https",
        ),
        # The function must read the account APIM writes into.
        (
            {"BACKUP_STORAGE__tableServiceUri": "https://other.table.core.windows.net"},
            "BACKUP_STORAGE__tableServiceUri",
            "'other'",
        ),
        (
            {"BACKUP_STORAGE__blobServiceUri": "https://127.0.0.1:10000/devstoreaccount1"},
            "BACKUP_STORAGE__blobServiceUri",
            "'devstoreaccount1'",
        ),
        # The emulator's fixed ARM token is no storage token.
        (
            {"ARM_CREDENTIAL": "emulator", "ARM_ENDPOINT": "https://127.0.0.1:8443"},
            "ARM_CREDENTIAL",
            "storage",
        ),
    ],
)
def test_identity_storage_is_checked_up_front(overrides: dict[str, str], setting: str, words: str):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**IDENTITY, **overrides})
    assert caught.value.setting == setting
    assert words in str(caught.value)


def test_identity_storage_accepts_the_same_account_and_azurite_paths():
    assert Settings.from_env(IDENTITY).storage.uses_identity
    local = {
        **IDENTITY,
        "BACKUP_STORAGE_ACCOUNT": "devstoreaccount1",
        "BACKUP_STORAGE__blobServiceUri": "https://127.0.0.1:10000/devstoreaccount1",
        "BACKUP_STORAGE__tableServiceUri": "https://127.0.0.1:10002/devstoreaccount1",
    }
    assert (
        Settings.from_env(local).storage.blob_service_uri == local["BACKUP_STORAGE__blobServiceUri"]
    )


def test_a_connection_string_for_another_account_is_refused_without_echoing_it():
    key = "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleS1rZXktaw=="
    with pytest.raises(ConfigError) as caught:
        settings(BACKUP_STORAGE=f"AccountName=other;AccountKey={key}")
    assert caught.value.setting == "BACKUP_STORAGE"
    assert "'other'" in str(caught.value) and key not in str(caught.value)


# -- timers run in UTC (issue 17, defect 11) ---------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEBSITE_TIME_ZONE", "W. Europe Standard Time"),
        ("WEBSITE_TIME_ZONE", "Europe/Paris"),
        ("WEBSITE_TIME_ZONE", "UTC"),  # refused all the same: Linux Consumption/Flex break on it
        ("TZ", "Europe/Paris"),
        ("TZ", "America/New_York"),
        ("TZ", "CET-1CEST"),
    ],
)
def test_a_non_utc_timer_time_zone_is_refused_naming_the_setting(name: str, value: str):
    with pytest.raises(ConfigError) as caught:
        settings(**{name: value})
    message = str(caught.value)
    assert message.startswith(f"Setting {name} is invalid:")
    assert "UTC" in message and "remove" in message


@pytest.mark.parametrize(
    "env",
    [{}, {"TZ": ""}, {"TZ": "UTC"}, {"TZ": "Etc/UTC"}, {"TZ": ":UTC"}, {"WEBSITE_TIME_ZONE": " "}],
)
def test_utc_or_no_time_zone_is_accepted(env: dict[str, str]):
    assert settings(**env).backup_schedule == "0 0 2 * * *"
