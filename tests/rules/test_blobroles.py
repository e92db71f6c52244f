"""The doctor's blob-role judgement, exactly: which assignment covers the container, which
role will do for a source and for a restore target, and the words of each finding."""

from __future__ import annotations

from shared.rules.blobroles import (
    READ_ROLES,
    WRITE_ROLES,
    blob_role,
    covers,
    role_assignment_not_checked,
)
from shared.rules.doctor import Finding, Level

ACCOUNT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/bk"
CONTAINER = f"{ACCOUNT}/blobServices/default/containers/apim-backups"
DEFINITIONS = "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"
CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
PRINCIPAL = "aaaaaaaa-0000-0000-0000-000000000001"


def assignment(role: str, scope: str | None = ACCOUNT, **more: str) -> dict[str, object]:
    props: dict[str, object] = {"roleDefinitionId": DEFINITIONS + role, **more}
    if scope is not None:
        props["scope"] = scope
    return {"id": "/x/providers/Microsoft.Authorization/roleAssignments/1", "properties": props}


def no_role(need: str, action: str) -> Finding:
    return Finding(
        Level.FAIL,
        "contoso blob role",
        f"its identity (principal {PRINCIPAL}) holds no {need} on the container: APIM cannot "
        f"{action} backups there",
        f"azd provision (infra/ assigns it, with the backup-name condition), or: az role "
        f"assignment create --assignee-object-id {PRINCIPAL} --assignee-principal-type "
        f'ServicePrincipal --role "Storage Blob Data Contributor" --scope {CONTAINER}',
    )


# covers ------------------------------------------------------------------------------------


def test_an_empty_scope_covers_nothing():
    """An assignment listed without a scope is at no scope: not above the container. (It
    covered every scope that starts with '/', that is all of them.)"""
    assert not covers("", CONTAINER)
    assert not covers("", "")
    assert not covers("  ", CONTAINER)


def test_an_assignment_without_a_scope_is_no_blob_role():
    found = blob_role("contoso", PRINCIPAL, CONTAINER, [assignment(CONTRIBUTOR, None)], True)
    assert found == no_role("Storage Blob Data Contributor", "write")
    empty = blob_role("contoso", PRINCIPAL, CONTAINER, [assignment(CONTRIBUTOR, "")], True)
    assert empty == no_role("Storage Blob Data Contributor", "write")


def test_the_root_scope_covers_everything():
    assert covers("/", CONTAINER)


def test_a_scope_covers_itself_and_what_is_below_it_whatever_the_case_and_trailing_slashes():
    assert covers(CONTAINER, CONTAINER)
    assert covers(ACCOUNT, CONTAINER)
    assert covers(ACCOUNT + "/", CONTAINER)
    assert covers(ACCOUNT + "//", CONTAINER + "/")
    assert covers("/subscriptions/s", CONTAINER)
    assert covers(CONTAINER.upper(), CONTAINER.lower())
    rg = "/subscriptions/s/resourceGroups/RG-X"  # a name ending in X: only '/' is stripped
    assert covers(rg, rg)
    assert covers(rg + "/", rg + "/providers/Microsoft.Storage/storageAccounts/bk")
    assert not covers(rg + "/providers", rg)


def test_a_scope_covers_only_on_a_path_boundary_and_not_what_is_above_or_beside_it():
    assert not covers(ACCOUNT + "2", ACCOUNT + "2x")
    assert not covers(ACCOUNT, ACCOUNT + "2/blobServices/default/containers/apim-backups")
    assert not covers(CONTAINER, ACCOUNT)
    assert not covers(f"{ACCOUNT}/blobServices/default/containers/apim", CONTAINER)
    assert not covers("/subscriptions/t", CONTAINER)


# blob_role ---------------------------------------------------------------------------------


def test_a_source_needs_a_role_that_writes_blobs():
    for role, name in ((CONTRIBUTOR, "Contributor"), (OWNER, "Owner")):
        found = blob_role("contoso", PRINCIPAL, CONTAINER, [assignment(role)], may_write=True)
        assert found == Finding(
            Level.OK, "contoso blob role", f"Storage Blob Data {name} at {ACCOUNT}"
        )
    reader = blob_role("contoso", PRINCIPAL, CONTAINER, [assignment(READER)], may_write=True)
    assert reader == no_role("Storage Blob Data Contributor", "write")


def test_a_restore_target_needs_only_a_role_that_reads_blobs():
    for role, name in ((READER, "Reader"), (CONTRIBUTOR, "Contributor"), (OWNER, "Owner")):
        found = blob_role("standby", PRINCIPAL, CONTAINER, [assignment(role)], may_write=False)
        assert found == Finding(
            Level.OK, "standby blob role", f"Storage Blob Data {name} at {ACCOUNT}"
        )
    assert set(READ_ROLES) == {CONTRIBUTOR, OWNER, READER}
    assert set(WRITE_ROLES) == {CONTRIBUTOR, OWNER}


def test_no_role_on_a_restore_target_says_it_cannot_read():
    owner = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"  # Owner: no data actions
    found = blob_role("contoso", PRINCIPAL, CONTAINER, [assignment(owner)], may_write=False)
    assert found == no_role("blob data role", "read")
    assert blob_role("contoso", PRINCIPAL, CONTAINER, [], may_write=False) == no_role(
        "blob data role", "read"
    )


def test_a_condition_is_named():
    item = assignment(CONTRIBUTOR, CONTAINER, condition="((!(ActionMatches{'x'})))")
    found = blob_role("contoso", PRINCIPAL, CONTAINER, [item], may_write=True)
    assert found == Finding(
        Level.OK,
        "contoso blob role",
        f"Storage Blob Data Contributor at {CONTAINER}, with a condition",
    )
    empty = assignment(CONTRIBUTOR, CONTAINER, condition="")
    assert blob_role("contoso", PRINCIPAL, CONTAINER, [empty], True).what == (
        f"Storage Blob Data Contributor at {CONTAINER}"
    )


def test_an_assignment_is_read_with_or_without_its_properties_wrapper():
    flat = {"roleDefinitionId": DEFINITIONS + CONTRIBUTOR, "scope": ACCOUNT}
    assert blob_role("contoso", PRINCIPAL, CONTAINER, [flat], True).level is Level.OK
    wrapped = {"properties": flat, "scope": "/subscriptions/t", "roleDefinitionId": "x"}
    assert blob_role("contoso", PRINCIPAL, CONTAINER, [wrapped], True).what == (
        f"Storage Blob Data Contributor at {ACCOUNT}"
    )


def test_the_role_is_the_guid_at_the_end_of_its_definition_id_in_any_case():
    for definition in (
        DEFINITIONS + CONTRIBUTOR.upper(),
        DEFINITIONS + CONTRIBUTOR + "/",
        CONTRIBUTOR,
    ):
        item = {"properties": {"roleDefinitionId": definition, "scope": ACCOUNT}}
        found = blob_role("contoso", PRINCIPAL, CONTAINER, [item], True)
        assert found.what == f"Storage Blob Data Contributor at {ACCOUNT}", definition
    # The GUID must be the last segment, not just appear in the path.
    item = {"properties": {"roleDefinitionId": f"/{CONTRIBUTOR}/x", "scope": ACCOUNT}}
    assert blob_role("contoso", PRINCIPAL, CONTAINER, [item], True).level is Level.FAIL


def test_an_assignment_without_a_role_or_elsewhere_is_skipped_for_a_later_one():
    items: list[dict[str, object]] = [
        {"properties": {"scope": ACCOUNT}},  # no roleDefinitionId
        assignment(CONTRIBUTOR, "/subscriptions/s/resourceGroups/other"),
        assignment(OWNER, CONTAINER),
    ]
    found = blob_role("contoso", PRINCIPAL, CONTAINER, items, may_write=True)
    assert found == Finding(
        Level.OK, "contoso blob role", f"Storage Blob Data Owner at {CONTAINER}"
    )


# role_assignment_not_checked ---------------------------------------------------------------


def test_not_checked_is_a_warning_with_the_command_that_checks():
    found = role_assignment_not_checked("contoso", PRINCIPAL, CONTAINER, "unreadable (403)")
    assert found == Finding(
        Level.WARN,
        "contoso blob role",
        "not checked: unreadable (403)",
        f"az role assignment list --assignee {PRINCIPAL} --scope {CONTAINER} "
        '--include-inherited --query "[].roleDefinitionName" -o tsv  '
        "(expect 'Storage Blob Data Contributor')",
    )


def test_not_checked_without_a_principal_or_scope_shows_placeholders():
    found = role_assignment_not_checked("contoso", None, None, "no account ID")
    assert found == Finding(
        Level.WARN,
        "contoso blob role",
        "not checked: no account ID",
        "az role assignment list --assignee <principal id> --scope "
        "<storage account id>/blobServices/default/containers/<container> "
        '--include-inherited --query "[].roleDefinitionName" -o tsv  '
        "(expect 'Storage Blob Data Contributor')",
    )
