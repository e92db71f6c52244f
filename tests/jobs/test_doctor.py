"""``python -m shared doctor`` against Azurite and the emulator: healthy, then one fault at
a time, each giving its FAIL line (in Azure's terms, with the fix) and a non-zero exit."""

from __future__ import annotations

import pytest

from shared.__main__ import main as cli
from tests.product import Product

pytestmark = pytest.mark.stack

SOURCES = ("contoso-apim", "contoso-standby")  # the product fixture's APIM_SERVICES


def healthy(product: Product) -> Product:
    """The product as `azd provision` leaves it: both tables and the container exist."""
    product.reconfigure(RESTORE_TARGETS=",".join(product.stack.service_id(n) for n in SOURCES))
    assert product.runtime.ledger is not None and product.runtime.operations is not None
    product.blob_service.create_container(product.runtime.settings.container)
    return product


def doctor(product: Product, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    account_id = product.stack.storage_account_id()
    code = cli(["doctor", "--storage-account-id", account_id, *extra])
    return code, capsys.readouterr().out


def lines(out: str, level: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(f"{level} ")]


def test_healthy_setup_is_all_ok_and_exits_0(product: Product, capsys: pytest.CaptureFixture[str]):
    code, out = doctor(healthy(product), capsys)

    assert code == 0, out
    assert lines(out, "FAIL") == []
    assert lines(out, "WARN") == []
    for expected in (
        "OK identity reads contoso-apim:",
        f"OK identity writes table {product.runtime.settings.ledger_table}: a probe entity",
        f"OK identity lists container {product.runtime.settings.container}:",
        "OK contoso-apim tier: Developer supports backup and restore",
        "OK contoso-apim identity: system-assigned identity on the service",
        "OK contoso-apim workspace gateways: none",
        "OK contoso-apim blob role: Storage Blob Data Contributor at "
        f"{product.stack.storage_account_id()}",
        "OK storage devstoreaccount1 CORS: no CORS rules",
        "OK storage devstoreaccount1 network: the firewall allows all networks",
        "OK storage devstoreaccount1 versioning: on",
        "OK storage devstoreaccount1 soft delete: 14 days",
        f"OK container {product.runtime.settings.container} immutability: no policy",
    ):
        assert expected in out, out
    assert out.rstrip().splitlines()[-1].startswith("doctor: ")


def test_probe_entities_are_deleted(product: Product, capsys: pytest.CaptureFixture[str]):
    healthy(product)
    doctor(product, capsys)

    table = product.runtime.clients.table(product.runtime.settings.ledger_table)
    assert list(table.list_entities()) == []


def test_a_v2_tier_fails(product: Product, capsys: pytest.CaptureFixture[str]):
    healthy(product).stack.control.patch_service("contoso-apim", {"sku": {"name": "StandardV2"}})

    code, out = doctor(product, capsys)

    assert code == 1
    assert (
        "FAIL contoso-apim tier: StandardV2 has no backup and restore "
        "(Microsoft.ApiManagement/service/backup is offered only on Developer, Basic, "
        "Standard and Premium) — remove the service from APIM_SERVICES" in out
    )


def test_no_identity_on_the_service_fails(product: Product, capsys: pytest.CaptureFixture[str]):
    healthy(product).stack.control.patch_service("contoso-apim", {"identity": None})

    code, out = doctor(product, capsys)

    assert code == 1
    assert (
        "FAIL contoso-apim identity: BACKUP_ACCESS_TYPE=SystemAssignedManagedIdentity but the "
        "service's identity is None — turn it on: az apim update --name contoso-apim" in out
    )


def test_a_user_assigned_client_id_not_on_the_service_fails(
    product: Product, capsys: pytest.CaptureFixture[str]
):
    healthy(product).reconfigure(
        BACKUP_ACCESS_TYPE="UserAssignedManagedIdentity",
        BACKUP_IDENTITY_CLIENT_ID="99999999-2222-3333-4444-555555555555",
    )

    code, out = doctor(product, capsys)

    assert code == 1
    assert (
        "FAIL contoso-apim identity: BACKUP_IDENTITY_CLIENT_ID "
        "99999999-2222-3333-4444-555555555555 is not a user-assigned identity of the service" in out
    )


def test_workspace_gateways_fail(product: Product, capsys: pytest.CaptureFixture[str]):
    healthy(product).stack.control.patch_service(
        "contoso-apim",
        {"workspaceLinks": [{"name": "team-a", "workspaceId": "w", "gateways": ["g"]}]},
    )

    code, out = doctor(product, capsys)

    assert code == 1
    assert "FAIL contoso-apim workspace gateways: the service has workspace gateways" in out


def test_a_restore_target_on_another_tier_fails(
    product: Product, capsys: pytest.CaptureFixture[str]
):
    healthy(product).reconfigure(
        RESTORE_TARGETS=",".join(product.stack.service_id(n) for n in ("fabrikam-standby",))
    )

    code, out = doctor(product, capsys)

    assert code == 1
    assert (
        "FAIL restore target fabrikam-standby tier: Premium, but no service in APIM_SERVICES "
        "is (contoso-apim Developer, contoso-standby Developer)" in out
    )


def test_an_unreadable_service_fails(product: Product, capsys: pytest.CaptureFixture[str]):
    healthy(product).stack.control.inject_fault(
        method="GET",
        path_contains="/service/contoso-apim?",
        status=403,
        times=10,
        code="AuthorizationFailed",
        message="The client does not have authorization to perform action "
        "'Microsoft.ApiManagement/service/read'.",
    )

    code, out = doctor(product, capsys)

    assert code == 1
    assert "FAIL identity reads contoso-apim: " in out
    assert "AuthorizationFailed" in out


def test_a_missing_container_fails(product: Product, capsys: pytest.CaptureFixture[str]):
    assert product.runtime.ledger is not None and product.runtime.operations is not None

    code, out = doctor(product, capsys)

    container = product.runtime.settings.container
    assert code == 1
    assert (
        f"FAIL identity lists container {container}: the container does not exist (infra/ "
        "creates it and scopes APIM's blob role to it: a role on a missing container lets APIM "
        f"write nothing) — create it (az storage container create --name {container}" in out
    )


def test_tables_not_yet_created_warn_and_write_nothing(
    product: Product, capsys: pytest.CaptureFixture[str]
):
    product.reconfigure(RESTORE_TARGETS=",".join(product.stack.service_id(n) for n in SOURCES))
    product.blob_service.create_container(product.runtime.settings.container)

    code, out = doctor(product, capsys)

    assert code == 0, out
    table = product.runtime.settings.ledger_table
    assert f"WARN identity writes table {table}: the table does not exist yet" in out
    names = [t.name for t in product.runtime.clients.table_service.list_tables()]
    assert table not in names  # the doctor did not create it


def test_cors_on_fails(product: Product, capsys: pytest.CaptureFixture[str]):
    from azure.storage.blob import CorsRule

    healthy(product).blob_service.set_service_properties(
        cors=[CorsRule(["https://example.com"], ["GET"])]
    )

    code, out = doctor(product, capsys)

    assert code == 1
    assert (
        "FAIL storage devstoreaccount1 CORS: 1 CORS rule(s) on the Blob service: API "
        "Management's backup fails while CORS is enabled — az storage cors clear --services b "
        "--account-name devstoreaccount1" in out
    )


def test_a_firewall_without_the_bypass_fails(product: Product, capsys: pytest.CaptureFixture[str]):
    healthy(product).stack.control.patch_storage(
        {"networkAcls": {"defaultAction": "Deny", "bypass": "None"}}
    )

    code, out = doctor(product, capsys)

    assert code == 1
    assert (
        "FAIL storage devstoreaccount1 network: the firewall denies by default without the "
        "trusted services bypass (bypass: None): API Management cannot write backups — "
        "az storage account update --name devstoreaccount1 --bypass AzureServices" in out
    )


def test_a_firewall_with_the_bypass_passes(product: Product, capsys: pytest.CaptureFixture[str]):
    healthy(product).stack.control.patch_storage(
        {"networkAcls": {"defaultAction": "Deny", "bypass": "AzureServices"}}
    )

    code, out = doctor(product, capsys)

    assert code == 0, out
    assert "OK storage devstoreaccount1 network: deny by default, trusted Azure services" in out


def test_a_locked_policy_longer_than_retention_fails(
    product: Product, capsys: pytest.CaptureFixture[str]
):
    container = healthy(product).reconfigure(RETENTION_DAYS="14").settings.container
    product.stack.control.patch_storage(
        {
            "immutabilityPolicies": {
                container: {"immutabilityPeriodSinceCreationInDays": 30, "state": "Locked"}
            }
        }
    )

    code, out = doctor(product, capsys)

    assert code == 1
    assert (
        f"FAIL container {container} immutability: Locked policy of 30 days, RETENTION_DAYS 14: "
        "pruning's deletes are refused until a backup is 30 days old — raise RETENTION_DAYS "
        "to 30" in out
    )


def test_a_locked_policy_shorter_than_retention_warns(
    product: Product, capsys: pytest.CaptureFixture[str]
):
    container = healthy(product).runtime.settings.container
    product.stack.control.patch_storage(
        {
            "immutabilityPolicies": {
                container: {"immutabilityPeriodSinceCreationInDays": 7, "state": "Locked"}
            }
        }
    )

    code, out = doctor(product, capsys)

    assert code == 0, out
    assert (
        f"WARN container {container} immutability: Locked policy of 7 days, RETENTION_DAYS 30: "
        "a backup can be deleted for its last 23 days — az storage container "
        "immutability-policy extend" in out
    )


def test_versioning_and_soft_delete_off_warn(product: Product, capsys: pytest.CaptureFixture[str]):
    healthy(product).stack.control.patch_storage(
        {"blobService": {"isVersioningEnabled": False, "deleteRetentionPolicy": {"enabled": False}}}
    )

    code, out = doctor(product, capsys)

    assert code == 0, out
    assert "WARN storage devstoreaccount1 versioning: off" in out
    assert "WARN storage devstoreaccount1 soft delete: off" in out


def test_without_the_account_id_the_arm_checks_say_not_checked(
    product: Product, capsys: pytest.CaptureFixture[str]
):
    healthy(product)
    capsys.readouterr()

    code = cli(["doctor"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert (
        "WARN storage devstoreaccount1 network, versioning, soft delete, immutability: not "
        "checked: the account's resource ID is not known — pass --storage-account-id" in out
    )


def test_a_wrong_account_id_is_refused_before_any_check(
    product: Product, capsys: pytest.CaptureFixture[str]
):
    capsys.readouterr()
    wrong = product.stack.storage_account_id().replace("devstoreaccount1", "other")

    code = cli(["doctor", "--storage-account-id", wrong])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert "names account other, but BACKUP_STORAGE_ACCOUNT is devstoreaccount1" in captured.err


def test_no_write_skips_the_probes_and_says_so(
    product: Product, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    from azure.data.tables import TableClient

    healthy(product)
    written: list[object] = []
    monkeypatch.setattr(TableClient, "create_entity", lambda self, entity: written.append(entity))

    code, out = doctor(product, capsys, "--no-write")

    assert code == 0, out
    assert written == []
    name = product.runtime.settings.ledger_table
    assert f"WARN identity writes table {name}: not checked: --no-write — " in out


CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
CONTOSO = "aaaaaaaa-0000-0000-0000-000000000001"  # contoso-apim's principal in the seed
STANDBY = "aaaaaaaa-0000-0000-0000-000000000002"


def role(product: Product, principal: str, role_id: str, scope: str) -> dict[str, str]:
    definitions = f"/subscriptions/{product.stack.subscription_id}/providers/"
    return {
        "principalId": principal,
        "roleDefinitionId": f"{definitions}Microsoft.Authorization/roleDefinitions/{role_id}",
        "scope": scope,
    }


def test_a_missing_role_assignment_fails(product: Product, capsys: pytest.CaptureFixture[str]):
    account = healthy(product).stack.storage_account_id()
    container = f"{account}/blobServices/default/containers/{product.runtime.settings.container}"
    product.stack.control.set_role_assignments(
        [
            role(product, STANDBY, CONTRIBUTOR, account),
            # contoso-apim's role is on another container: it does not cover this one
            role(product, CONTOSO, CONTRIBUTOR, f"{account}/blobServices/default/containers/x"),
        ]
    )

    code, out = doctor(product, capsys)

    assert code == 1
    assert (
        f"FAIL contoso-apim blob role: its identity (principal {CONTOSO}) holds no Storage Blob "
        "Data Contributor on the container: APIM cannot write backups there — azd provision "
        "(infra/ assigns it, with the backup-name condition), or: az role assignment create "
        f"--assignee-object-id {CONTOSO} --assignee-principal-type ServicePrincipal --role "
        f'"Storage Blob Data Contributor" --scope {container}' in out
    )
    assert "OK contoso-standby blob role: Storage Blob Data Contributor at" in out


def test_a_reader_role_does_for_a_restore_target_not_for_a_source(
    product: Product, capsys: pytest.CaptureFixture[str]
):
    healthy(product).reconfigure(APIM_SERVICES=product.stack.service_id("contoso-apim"))
    account_id = product.stack.storage_account_id()
    product.stack.control.set_role_assignments(
        [role(product, CONTOSO, READER, account_id), role(product, STANDBY, READER, account_id)]
    )

    code, out = doctor(product, capsys)

    assert code == 1
    assert "FAIL contoso-apim blob role: its identity" in out
    assert f"OK contoso-standby blob role: Storage Blob Data Reader at {account_id}" in out


def test_unreadable_role_assignments_warn_with_the_command(
    product: Product, capsys: pytest.CaptureFixture[str]
):
    healthy(product).stack.control.inject_fault(
        method="GET",
        path_contains="roleAssignments",
        status=403,
        times=10,
        code="AuthorizationFailed",
        message="no roleAssignments/read",
    )

    code, out = doctor(product, capsys)

    assert code == 0, out
    assert (
        "WARN contoso-apim blob role: not checked: role assignments unreadable "
        "(AuthorizationFailed: no roleAssignments/read) — az role assignment list --assignee "
        f"{CONTOSO} --scope {product.stack.storage_account_id()}" in out
    )
