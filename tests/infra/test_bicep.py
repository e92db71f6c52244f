"""Offline checks of the Bicep templates: syntax, app settings, roles and secrets."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from tree_sitter import Node

from shared.settings import SETTING_NAMES
from tests.infra import (
    INFRA,
    REPO,
    Setting,
    app_settings,
    bicep_files,
    error_nodes,
    object_properties,
    parse,
    resource_declarations,
    string_value,
    text,
    variables,
    walk,
)

# Built-in role ids and names (FACTS.md; Storage Blob/Table Data Reader and Key Vault
# Secrets User from Microsoft's built-in roles list). A GUID in the templates must be
# one of these, with its name in the comment beside it.
BUILT_IN_ROLES = {
    "312a565d-c81f-4fd8-895a-4e21e48d571c": "API Management Service Contributor",
    "e022efe7-f5ba-4159-bbe4-b44f577e9b61": "API Management Service Operator Role",
    "71522526-b88f-4d52-b57f-d31fc3546d0d": "API Management Service Reader Role",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "76199698-9eea-4c19-bc75-cec21354c6b6": "Storage Table Data Reader",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
}
# Roles the product cannot work without: the check below must find each in use.
REQUIRED_ROLES = {
    "API Management Service Operator Role",
    "Storage Blob Data Contributor",
    "Storage Table Data Contributor",
    "Storage Blob Data Owner",
    "Storage Queue Data Contributor",
    "Monitoring Metrics Publisher",
    "Reader",
}

# App settings of the Functions host and Application Insights, not of the product.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
# The product's connection-string alternative, for local runs only: in Azure the
# function reaches the backup account by identity (BACKUP_STORAGE__*).
LOCAL_ONLY_SETTINGS = {"BACKUP_STORAGE"}
# Rejected or deprecated on Flex Consumption; a plain AzureWebJobsStorage would be a
# connection string with a key.
FORBIDDEN_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_RUN_FROM_PACKAGE",
    "AzureWebJobsStorage",
    "AzureWebJobsDashboard",
}
CONTRACT_SCHEDULES = {"BACKUP_SCHEDULE", "HOUSEKEEPING_SCHEDULE", "STANDBY_SCHEDULE"}

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIMER_SETTING = re.compile(r"""schedule\s*=\s*["']%([A-Za-z_][A-Za-z0-9_]*)%["']""")
_SKIP_DIRS = {"node_modules", ".venv", "tests", ".git", "infra"}


def timer_settings() -> set[str]:
    """Every %SETTING% a timer trigger in the app's code uses, plus CONTRACT's three."""
    found = set(CONTRACT_SCHEDULES)
    for folder, dirs, files in os.walk(REPO):
        # Prune while walking: .venv and node_modules hold many thousands of files.
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
        for name in files:
            if name.endswith(".py"):
                source = (Path(folder) / name).read_text(encoding="utf-8")
                found.update(TIMER_SETTING.findall(source))
    return found


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# --- syntax -------------------------------------------------------------------------


def test_the_templates_exist() -> None:
    names = {_rel(p) for p in bicep_files()}
    assert "infra/main.bicep" in names
    assert any(n.startswith("infra/app/") for n in names)


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_bicep_file_parses_without_errors(path: Path) -> None:
    errors = error_nodes(parse(path))
    where = [f"line {n.start_point[0] + 1}: {text(n)[:60]!r}" for n in errors]
    assert not errors, f"{_rel(path)} has syntax errors: {where}"


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_every_param_and_output_is_described(path: Path) -> None:
    root = parse(path).root_node
    undescribed: list[str] = []
    decorators: Node | None = None
    for node in root.named_children:
        if node.type == "decorators":
            decorators = node
            continue
        if node.type in ("parameter_declaration", "output_declaration"):
            name = text(node.named_children[0])
            described = decorators is not None and re.search(
                r"@description\(\s*'(Required|Optional)\. ", text(decorators)
            )
            if not described:
                undescribed.append(f"{node.type.split('_')[0]} {name}")
        if node.type != "comment":
            decorators = None
    assert not undescribed, f"{_rel(path)}: no Required./Optional. description: {undescribed}"


# --- app settings -------------------------------------------------------------------


def test_app_settings_are_exactly_the_products_settings() -> None:
    written = set(app_settings())
    product = written - PLATFORM_SETTINGS
    expected = set(SETTING_NAMES) - LOCAL_ONLY_SETTINGS
    unset = sorted(expected - product)
    unread = sorted(product - expected)
    assert not unset, f"settings the product reads but Bicep never sets: {unset}"
    assert not unread, f"settings Bicep sets but the product never reads: {unread}"
    missing = sorted(PLATFORM_SETTINGS - written)
    assert not missing, f"missing host settings: {missing}"


def test_no_setting_flex_consumption_rejects_or_that_holds_a_key() -> None:
    present = FORBIDDEN_SETTINGS & set(app_settings())
    assert not present, f"not allowed on Flex Consumption / with identity-based access: {present}"


def test_backup_storage_is_reached_by_identity_not_a_connection_string() -> None:
    settings = app_settings()
    assert "BACKUP_STORAGE" not in settings
    for name in (
        "BACKUP_STORAGE__blobServiceUri",
        "BACKUP_STORAGE__tableServiceUri",
        "BACKUP_STORAGE__clientId",
    ):
        assert not settings[name].conditional, f"{name} must always be set"
    assert string_value(settings["AzureWebJobsStorage__credential"].value) == "managedidentity"


def test_storage_key_is_only_a_key_vault_reference_and_only_with_access_key() -> None:
    setting = app_settings()["BACKUP_STORAGE_KEY"]
    assert setting.conditional, "BACKUP_STORAGE_KEY must be set only with AccessKey"
    assert setting.value.type == "string"
    assert text(setting.value).startswith("'@Microsoft.KeyVault(SecretUri=${")
    # The condition that guards it names AccessKey (directly or through a variable).
    node = setting.value
    while node.type != "ternary_expression":
        assert node.parent is not None
        node = node.parent
    condition = node.named_children[0]
    declared = variables(parse(setting.file))
    if condition.type == "identifier":
        condition = declared[text(condition)]
    assert "'AccessKey'" in text(condition)


def _six_field_literals(node: Node) -> list[str]:
    values = (string_value(n) for n in walk(node) if n.type == "string")
    return [v for v in values if v is not None and len(v.split()) == 6]


@pytest.mark.parametrize("name", sorted(timer_settings()))
def test_every_timer_schedule_always_has_a_value(name: str) -> None:
    setting: Setting | None = app_settings().get(name)
    assert setting is not None, f"timer setting {name} is not an app setting"
    assert not setting.conditional, f"timer setting {name} must be set unconditionally"
    value = setting.value
    if value.type == "string":
        assert string_value(value), f"{name} is empty"
    else:
        # A parameter may be empty (azd passes '' for an unset variable): the setting
        # must fall back to a six-field NCRONTAB literal then.
        assert value.type == "ternary_expression", f"{name}: {text(value)}"
        assert "empty(" in text(value.named_children[0])
        assert _six_field_literals(value), f"{name} has no NCRONTAB fallback: {text(value)}"


def test_arm_settings_use_the_apps_identity_and_the_clouds_endpoint() -> None:
    settings = app_settings()
    assert string_value(settings["ARM_CREDENTIAL"].value) == "managedidentity"
    client_id = text(settings["AZURE_CLIENT_ID"].value)
    assert text(settings["BACKUP_STORAGE__clientId"].value) == client_id
    assert text(settings["AzureWebJobsStorage__clientId"].value) == client_id
    endpoint = settings["ARM_ENDPOINT"]
    tree = parse(endpoint.file)
    uses = {text(n) for n in walk(endpoint.value) if n.type == "identifier"}
    sources = {text(variables(tree)[u]) for u in uses if u in variables(tree)}
    assert "environment().resourceManager" in sources | {text(endpoint.value)}
    assert "substring(" in text(endpoint.value), "the trailing slash must be trimmed"


def test_application_insights_ingestion_uses_entra_id() -> None:
    auth = text(app_settings()["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].value)
    assert auth.startswith("'Authorization=AAD;ClientId=${")
    monitoring = (INFRA / "app" / "monitoring.bicep").read_text()
    assert re.search(r"DisableLocalAuth:\s*true", monitoring)


# --- roles --------------------------------------------------------------------------


def _comments_by_line(path: Path) -> dict[int, str]:
    return {n.start_point[0]: text(n) for n in walk(parse(path).root_node) if n.type == "comment"}


def test_each_role_guid_is_a_known_role_named_in_the_comment_beside_it() -> None:
    used: set[str] = set()
    problems: list[str] = []
    for path in bicep_files():
        comments = _comments_by_line(path)
        for node in walk(parse(path).root_node):
            value = string_value(node)
            if value is None or not GUID.match(value.lower()):
                continue
            line = node.start_point[0]
            where = f"{_rel(path)}:{line + 1}"
            role = BUILT_IN_ROLES.get(value.lower())
            if role is None:
                problems.append(f"{where}: {value} is not a known built-in role")
                continue
            comment = comments.get(line, "").lstrip("/ ").strip()
            if comment != role:
                problems.append(f"{where}: {value} is {role!r}, comment says {comment!r}")
            used.add(role)
    assert not problems, "\n".join(problems)
    never = sorted(REQUIRED_ROLES - used)
    assert not never, f"roles never granted: {never}"


def test_role_assignment_names_come_from_scope_principal_id_and_role() -> None:
    # guid(<scope>.id, principalId, <role>): after `azd down` + `azd up` an identity keeps
    # its resource ID but gets a new principal; a name built from the resource ID would
    # point at the old assignment (RoleAssignmentUpdateNotPermitted on a service outside
    # the resource group). principalId is a module parameter, known when the module
    # starts, so it may be used in the name.
    count = 0
    for path in bicep_files():
        tree = parse(path)
        params = {
            text(n.named_children[0])
            for n in tree.root_node.named_children
            if n.type == "parameter_declaration"
        }
        for _decl, body in resource_declarations(tree, "Microsoft.Authorization/roleAssignments@"):
            count += 1
            where = f"{_rel(path)}:{body.start_point[0] + 1}"
            props = object_properties(body)
            name = props["name"]
            assert name.type == "call_expression", f"{where}: {text(name)}"
            assert text(name.named_children[0]) == "guid", f"{where}: {text(name)}"
            scope_arg, principal_arg, role_arg = name.named_children[1].named_children
            assert text(scope_arg) == f"{text(props['scope'])}.id", f"{where}: {text(name)}"
            inner = object_properties(props["properties"])
            principal = text(inner["principalId"])
            assert text(principal_arg) == principal, f"{where}: {text(name)} is not by {principal}"
            assert principal in params, f"{where}: {principal} must be a parameter"
            role_ref = text(inner["roleDefinitionId"])
            assert role_ref.startswith("subscriptionResourceId("), where
            assert text(role_arg) in role_ref, f"{where}: {text(role_arg)} is not the role granted"
    assert count >= 6  # account, container, tables, APIM, App Insights, Key Vault secret


def test_apim_role_is_scoped_to_each_service_in_its_own_resource_group() -> None:
    main = (INFRA / "main.bicep").read_text()
    # One module per service, deployed to the service's subscription and resource group.
    assert re.search(
        r"module apimAccess 'app/apim-access\.bicep' = \[\s*for \(id, i\) in accessIds:", main
    )
    assert "scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])" in main
    # Both the services to back up and the restore targets are covered.
    assert re.search(r"var accessIds = union\(.*apimIds.*restoreIds", main)
    module = parse(INFRA / "app" / "apim-access.bicep")
    [(_decl, body)] = resource_declarations(module, "Microsoft.Authorization/roleAssignments@")
    assert text(object_properties(body)["scope"]) == "apim"


# --- secrets and storage hardening --------------------------------------------------

_KEY_FUNCTIONS = re.compile(r"^list[A-Z]\w*$")  # listKeys, listAccountSas, listSecrets...
_KEY_TEXT = ("AccountKey=", "SharedAccessSignature=", "DefaultEndpointsProtocol=")


def test_no_account_key_or_keyed_connection_string_anywhere() -> None:
    problems: list[str] = []
    for path in bicep_files():
        for node in walk(parse(path).root_node):
            where = f"{_rel(path)}:{node.start_point[0] + 1}"
            if node.type == "call_expression":
                name = text(node.named_children[0]).split(".")[-1]
                if _KEY_FUNCTIONS.match(name):
                    problems.append(f"{where}: {name}()")
            if node.type == "member_expression" and text(node).endswith(
                (".listKeys", ".keys", ".primaryKey", ".secondaryKey")
            ):
                problems.append(f"{where}: {text(node)}")
            if node.type == "string" and any(k in text(node) for k in _KEY_TEXT):
                problems.append(f"{where}: {text(node)[:60]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_outputs_carry_no_secret(path: Path) -> None:
    for node in parse(path).root_node.named_children:
        if node.type != "output_declaration":
            continue
        value = text(node).lower()
        for word in ("key", "connectionstring", "secret", "sas", "password"):
            name = text(node.named_children[0]).lower()
            assert word not in value.replace(name, ""), f"{_rel(path)}: {text(node)}"


def test_host_storage_refuses_shared_keys() -> None:
    tree = parse(INFRA / "app" / "host-storage.bicep")
    [(_decl, body)] = resource_declarations(tree, "Microsoft.Storage/storageAccounts@")
    props = object_properties(object_properties(body)["properties"])
    assert text(props["allowSharedKeyAccess"]) == "false"
    assert text(props["allowBlobPublicAccess"]) == "false"
    assert string_value(props["minimumTlsVersion"]) == "TLS1_2"


def test_backup_storage_allows_shared_keys_only_for_access_key() -> None:
    tree = parse(INFRA / "app" / "backup-storage.bicep")
    accounts = [
        body
        for decl, body in resource_declarations(tree, "Microsoft.Storage/storageAccounts@")
        if "existing" not in text(decl).split("{")[0]
    ]
    [account] = accounts
    props = object_properties(object_properties(account)["properties"])
    assert text(props["allowSharedKeyAccess"]) == "allowSharedKeyAccess"
    assert text(props["allowBlobPublicAccess"]) == "false"
    assert string_value(props["minimumTlsVersion"]) == "TLS1_2"
    assert re.search(r"param allowSharedKeyAccess bool = false", text(tree.root_node))
    main = (INFRA / "main.bicep").read_text()
    assert "allowSharedKeyAccess: useAccessKey" in main
    assert "var useAccessKey = accessType == 'AccessKey'" in main


def test_backup_storage_has_no_cors_rules_and_soft_delete() -> None:
    tree = parse(INFRA / "app" / "backup-storage.bicep")
    services = [
        body
        for decl, body in resource_declarations(
            tree, "Microsoft.Storage/storageAccounts/blobServices@"
        )
        if "properties" in object_properties(body)
    ]
    [service] = services
    props = object_properties(object_properties(service)["properties"])
    cors = object_properties(props["cors"])
    assert cors["corsRules"].type == "array" and not cors["corsRules"].named_children
    retention = object_properties(props["deleteRetentionPolicy"])
    assert text(retention["enabled"]) == "true"


def test_lifecycle_rule_filters_only_by_blob_type_and_container_prefix() -> None:
    tree = parse(INFRA / "app" / "backup-storage.bicep")
    [(_decl, body)] = resource_declarations(
        tree, "Microsoft.Storage/storageAccounts/managementPolicies@"
    )
    filters = [
        n
        for n in walk(body)
        if n.type == "object_property" and text(n.named_children[0]) == "filters"
    ]
    assert filters
    for prop in filters:
        keys = set(object_properties(prop.named_children[-1]))
        assert keys == {"blobTypes", "prefixMatch"}, keys
        prefix = object_properties(prop.named_children[-1])["prefixMatch"]
        assert text(prefix.named_children[0]) == "'${containerName}/'"
    assert re.search(r"param backupBlobMaxAgeDays int = 35", text(tree.root_node))


def test_tables_and_container_are_created() -> None:
    tree = parse(INFRA / "app" / "backup-storage.bicep")
    tables = resource_declarations(tree, "Microsoft.Storage/storageAccounts/tableServices/tables@")
    names = {text(object_properties(body)["name"]) for _d, body in tables}
    assert names == {"ledgerTableName", "operationsTableName"}
    main = (INFRA / "main.bicep").read_text()
    for default in ("'apim-backups'", "'apimbackups'", "'apimoperations'"):
        assert default in main


# --- azd wiring ---------------------------------------------------------------------


def test_site_is_flex_consumption_python_tagged_for_azd() -> None:
    tree = parse(INFRA / "app" / "function-app.bicep")
    [(_d, site)] = resource_declarations(tree, "Microsoft.Web/sites@")
    site_text = text(site)
    assert "'azd-service-name': 'api'" in site_text
    assert "kind: 'functionapp,linux'" in site_text
    # Azure runs the Python the tests ran on: 3.13, with the runtime from requirements.txt.
    tested = f"{sys.version_info.major}\\.{sys.version_info.minor}"
    assert tested == "3\\.13"
    assert re.search(rf"name: 'python'\s+version: '{tested}'", site_text)
    assert "linuxFxVersion" not in site_text
    [(_d, plan)] = resource_declarations(tree, "Microsoft.Web/serverfarms@")
    assert "name: 'FC1'" in text(plan) and "tier: 'FlexConsumption'" in text(plan)


def test_azure_yaml_declares_the_function_service() -> None:
    azure_yaml = (REPO / "azure.yaml").read_text()
    block = re.search(r"^services:\n  api:\n((?:    .*\n)+)", azure_yaml, re.MULTILINE)
    assert block, "azure.yaml needs services.api"
    fields = dict(line.strip().split(": ", 1) for line in block.group(1).splitlines())
    assert fields == {"project": ".", "language": "python", "host": "function"}


def test_main_parameters_name_only_declared_parameters() -> None:
    declared = {
        text(n.named_children[0])
        for n in parse(INFRA / "main.bicep").root_node.named_children
        if n.type == "parameter_declaration"
    }
    required = {
        text(n.named_children[0])
        for n in parse(INFRA / "main.bicep").root_node.named_children
        if n.type == "parameter_declaration" and "=" not in text(n)
    }
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(parameters) <= declared, set(parameters) - declared
    assert required <= set(parameters), required - set(parameters)
    assert "targetScope = 'subscription'" in text(parse(INFRA / "main.bicep").root_node)
