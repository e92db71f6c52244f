"""local.settings.sample.json (written at the repo root) resolves every timer schedule, and
sets exactly the product's settings (SETTING_NAMES) but for a few alternatives."""

from __future__ import annotations

import json

import pytest

from shared.settings import SETTING_NAMES, Settings
from tests.infra import REPO
from tests.infra.test_bicep import timer_settings

SAMPLE = REPO / "local.settings.sample.json"


@pytest.mark.skipif(not SAMPLE.exists(), reason="local.settings.sample.json is not there yet")
@pytest.mark.parametrize("name", sorted(timer_settings()))
def test_sample_sets_every_timer_setting(name: str) -> None:
    values = json.loads(SAMPLE.read_text(encoding="utf-8"))["Values"]
    value = values.get(name, "")
    assert value.strip(), f"local.settings.sample.json does not set {name}"
    assert len(value.split()) == 6, f"{name} is not a six-field NCRONTAB: {value!r}"


# -- the sample, SETTING_NAMES and docs/settings.md in step ------------------------------
# (The Bicep app settings are held to SETTING_NAMES by test_bicep.py; the docs' table by
# tests/repo/test_docs.py. Together the four cannot drift apart.)

# Settings the sample leaves out, each for a reason; every other one it sets.
NOT_IN_SAMPLE = {
    "BACKUP_IDENTITY_CLIENT_ID": "only with BACKUP_ACCESS_TYPE=UserAssignedManagedIdentity",
    "BACKUP_STORAGE_KEY": "a secret, and only with BACKUP_ACCESS_TYPE=AccessKey",
    "BACKUP_STORAGE__blobServiceUri": "the identity-based alternative to BACKUP_STORAGE",
    "BACKUP_STORAGE__tableServiceUri": "the identity-based alternative to BACKUP_STORAGE",
    "BACKUP_STORAGE__clientId": "the identity-based alternative to BACKUP_STORAGE",
    "AZURE_CLIENT_ID": "Azure only: the function app's user-assigned identity",
}
# What the sample sets for the Functions host and the local stack, not for the product.
HOST_SETTINGS = {"AzureWebJobsStorage", "FUNCTIONS_WORKER_RUNTIME", "REQUESTS_CA_BUNDLE"}


def _sample_values() -> dict[str, str]:
    values: dict[str, str] = json.loads(SAMPLE.read_text(encoding="utf-8"))["Values"]
    return values


def test_sample_sets_every_product_setting_but_the_alternatives() -> None:
    assert set(NOT_IN_SAMPLE) <= set(SETTING_NAMES), "NOT_IN_SAMPLE names a setting not read"
    missing = sorted(set(SETTING_NAMES) - set(_sample_values()) - set(NOT_IN_SAMPLE))
    assert not missing, f"local.settings.sample.json does not set {missing}"


def test_sample_sets_nothing_the_product_does_not_read() -> None:
    unread = sorted(set(_sample_values()) - set(SETTING_NAMES) - HOST_SETTINGS)
    assert not unread, f"local.settings.sample.json sets what nothing reads: {unread}"


def test_sample_is_a_valid_configuration() -> None:
    settings = Settings.from_env(_sample_values())
    assert settings.arm_credential.value == "emulator"
    assert [s.name for s in settings.apim_services] == ["contoso-apim"]
