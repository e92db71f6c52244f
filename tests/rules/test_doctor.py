"""The doctor's judgements, without a server: what each reading means and its fix."""

from __future__ import annotations

import pytest

from shared.rules import doctor
from shared.rules.doctor import Finding, Level
from shared.rules.naming import storage_account_ref
from shared.rules.service import AccessType

APIM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/contoso"
ACCOUNT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/bk"


def test_a_line_is_level_check_what_and_fix():
    assert Finding(Level.FAIL, "c", "w", "f").line() == "FAIL c: w — f"
    assert Finding(Level.OK, "c", "w").line() == "OK c: w"


def test_exit_code_fails_only_on_a_fail():
    assert doctor.exit_code([Finding(Level.OK, "a", "b"), Finding(Level.WARN, "a", "b")]) == 0
    assert doctor.exit_code([Finding(Level.WARN, "a", "b"), Finding(Level.FAIL, "a", "b")]) == 1


@pytest.mark.parametrize(
    ("props", "access", "level"),
    [
        ({}, AccessType.ACCESS_KEY, Level.OK),
        ({"networkAcls": {"defaultAction": "Deny", "bypass": "AzureServices"}}, None, Level.OK),
        (
            {"networkAcls": {"defaultAction": "Deny", "bypass": "Logging, Metrics"}},
            None,
            Level.FAIL,
        ),
        (
            {
                "networkAcls": {
                    "defaultAction": "Deny",
                    "resourceAccessRules": [{"resourceId": APIM}],
                }
            },
            None,
            Level.OK,
        ),
        (
            {"networkAcls": {"defaultAction": "Deny", "bypass": "AzureServices"}},
            AccessType.USER_ASSIGNED,
            Level.FAIL,
        ),
        ({"publicNetworkAccess": "Disabled"}, None, Level.FAIL),
    ],
)
def test_network(props, access, level):
    found = doctor.network("bk", props, access or AccessType.SYSTEM_ASSIGNED, [APIM])
    assert found.level is level, found.line()


def test_a_user_assigned_identity_is_found_by_client_id_whatever_its_case():
    identity = {
        "type": "UserAssigned",
        "userAssignedIdentities": {"/x": {"clientId": "AB", "principalId": "p"}},
    }
    found = doctor.service_identity("s", AccessType.USER_ASSIGNED, identity, "ab")
    assert found.level is Level.OK
    missing = doctor.service_identity("s", AccessType.USER_ASSIGNED, identity, "cd")
    assert missing.level is Level.FAIL


def _policy(days: int, state: str, append_all: bool = True) -> dict[str, object]:
    return {
        "properties": {
            "immutabilityPeriodSinceCreationInDays": days,
            "state": state,
            "allowProtectedAppendWritesAll": append_all,
        }
    }


@pytest.mark.parametrize(
    ("policy", "level", "words"),
    [
        (None, Level.OK, "no policy"),
        (_policy(30, "Locked"), Level.OK, "Locked policy of 30 days"),
        (_policy(30, "Unlocked"), Level.WARN, "an administrator can still remove it"),
        (_policy(30, "Unlocked", append_all=False), Level.WARN, "allowProtectedAppendWritesAll"),
        (_policy(14, "Locked"), Level.WARN, "for its last 16 days"),
        (_policy(31, "Unlocked"), Level.FAIL, "shorten the policy"),
    ],
)
def test_immutability_against_retention(policy, level, words):
    found = doctor.immutability("apim-backups", policy, 30)
    assert found.level is level
    assert words in found.line()


def test_a_restore_target_needs_a_source_on_its_tier():
    assert doctor.restore_target_tier("t", "Premium", {"a": "Premium"}).level is Level.OK
    assert doctor.restore_target_tier("t", "Premium", {"a": "Standard"}).level is Level.FAIL


def test_cors_unreadable_is_a_warning_not_an_ok():
    assert doctor.cors("bk", None).level is Level.WARN


def test_the_account_id_is_parsed_and_must_name_the_configured_account():
    ref = storage_account_ref(ACCOUNT + "/", "BK")
    assert (ref.subscription_id, ref.resource_group, ref.name) == ("s", "rg", "bk")
    with pytest.raises(ValueError, match="names account bk, but BACKUP_STORAGE_ACCOUNT is other"):
        storage_account_ref(ACCOUNT, "other")
    with pytest.raises(ValueError, match=r"is not Microsoft\.Storage/storageAccounts"):
        storage_account_ref(APIM, "contoso")
    with pytest.raises(ValueError, match="expected /subscriptions/"):
        storage_account_ref("bk", "bk")


def test_an_assignment_covers_its_scope_and_below_only_on_a_path_boundary():
    from shared.rules.blobroles import covers

    container = f"{ACCOUNT}/blobServices/default/containers/apim-backups"
    assert covers(ACCOUNT, container)
    assert covers(container.upper(), container)
    assert not covers(f"{ACCOUNT}/blobServices/default/containers/apim", container)
    assert not covers(container + "/blobs/x", container)


def test_a_blob_role_must_be_a_blob_data_role():
    from shared.rules.blobroles import blob_role

    container = f"{ACCOUNT}/blobServices/default/containers/apim-backups"
    owner = (
        "/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
    )
    items = [{"properties": {"roleDefinitionId": owner, "scope": ACCOUNT}}]  # Owner: no data
    assert blob_role("s", "p", container, items, may_write=True).level is Level.FAIL
