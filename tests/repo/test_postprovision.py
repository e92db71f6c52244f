"""azd's postprovision hook: the doctor's settings from the azd environment, read-only."""

from __future__ import annotations

from scripts.postprovision import doctor_command
from tests.repo.test_conventions import load_yaml
from tests.repo.test_docs import REPO

AZD = {
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "AZURE_RESOURCE_GROUP": "rg-backup",
    "BACKUP_STORAGE_ACCOUNT": "stbackup",
    "APIM_SERVICES": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/a",
    "BACKUP_CONTAINER": "apim-backups",
}


def test_the_hook_runs_the_doctor_read_only_against_the_provisioned_account():
    planned = doctor_command(AZD)

    assert not isinstance(planned, str)
    env, args = planned
    account_id = (
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-backup"
        "/providers/Microsoft.Storage/storageAccounts/stbackup"
    )
    assert args == ["-m", "shared", "doctor", "--no-write", "--storage-account-id", account_id]
    assert env["BACKUP_STORAGE__blobServiceUri"] == "https://stbackup.blob.core.windows.net"
    assert env["ARM_CREDENTIAL"] == "default"
    assert env["BACKUP_CONTAINER"] == "apim-backups"


def test_an_existing_account_is_checked_where_it_is():
    existing = (
        "/subscriptions/x/resourceGroups/other/providers/Microsoft.Storage/storageAccounts/stbackup"
    )
    planned = doctor_command({**AZD, "EXISTING_BACKUP_STORAGE_ACCOUNT_ID": existing})
    assert not isinstance(planned, str)
    assert planned[1][-1] == existing


def test_without_services_the_hook_says_why_it_skips():
    env = {k: v for k, v in AZD.items() if k != "APIM_SERVICES"}
    assert doctor_command(env) == (
        "BACKUP_STORAGE_ACCOUNT or APIM_SERVICES is not in the azd environment"
    )


def test_azure_yaml_runs_the_hook_after_provision_without_blocking_the_deploy():
    hook = load_yaml(REPO / "azure.yaml")["hooks"]["postprovision"]
    for shell in ("posix", "windows"):
        assert "scripts/postprovision.py" in hook[shell]["run"]
        assert hook[shell]["continueOnError"] is True
