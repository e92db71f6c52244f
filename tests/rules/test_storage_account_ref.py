"""The backup account's resource ID (``--storage-account-id``), exactly: what it accepts,
what it keeps, and the message for each way it is wrong."""

from __future__ import annotations

import re

import pytest

from shared.rules.naming import AccountRef, storage_account_ref

SHAPE = (
    "expected /subscriptions/<id>/resourceGroups/<rg>/providers/"
    "Microsoft.Storage/storageAccounts/<name>"
)


def refused(text: str, account: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        storage_account_ref(text, account)


def test_the_parts_are_kept_as_written_and_the_id_rebuilt():
    text = (
        " /subscriptions/S-1/resourceGroups/RG-X/providers/Microsoft.Storage/storageAccounts/BkX/ "
    )
    ref = storage_account_ref(text, "bkx")
    assert ref == AccountRef("S-1", "RG-X", "BkX")
    assert ref.resource_id == (
        "/subscriptions/S-1/resourceGroups/RG-X/providers/Microsoft.Storage/storageAccounts/BkX"
    )


def test_the_fixed_segments_are_read_in_any_case():
    text = "SUBSCRIPTIONS/s/RESOURCEGROUPS/rg/PROVIDERS/microsoft.storage/STORAGEACCOUNTS/bk"
    assert storage_account_ref(text, "BK") == AccountRef("s", "rg", "bk")


@pytest.mark.parametrize(
    "text",
    [
        "bk",
        "",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/bk/x",
        # eight segments, one of them misspelt
        "/subscription/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/bk",
        "/subscriptions/s/resourceGroup/rg/providers/Microsoft.Storage/storageAccounts/bk",
        "/subscriptions/s/resourceGroups/rg/provider/Microsoft.Storage/storageAccounts/bk",
    ],
)
def test_anything_not_of_the_shape_is_refused_with_the_shape(text: str):
    refused(text, "bk", SHAPE)


def test_another_resource_type_is_named():
    apim = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/bk"
    refused(apim, "bk", "Microsoft.ApiManagement/service is not Microsoft.Storage/storageAccounts")
    vm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/bk"
    refused(vm, "bk", "Microsoft.Compute/virtualMachines is not Microsoft.Storage/storageAccounts")


def test_another_account_is_refused_with_both_names():
    text = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/Bk2"
    refused(text, "bk", "it names account Bk2, but BACKUP_STORAGE_ACCOUNT is bk")
