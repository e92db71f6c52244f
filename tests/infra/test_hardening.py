"""Offline checks that the templates deploy as written and set what infra/README.md claims:
the four deploy breakers of issue 12, the ransomware-safe backup account, least privilege,
diagnostics, callers without keys and the alert rules (tree-sitter, as test_bicep.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tree_sitter import Node, Tree

from tests.infra import (
    INFRA,
    REPO,
    app_settings,
    bicep_files,
    object_properties,
    parse,
    resource_declarations,
    string_value,
    text,
    variables,
    walk,
)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _decorated(tree: Tree, kind: str, name: str) -> tuple[Node, str]:
    """(declaration, text of its decorators) of a top-level param/output/var."""
    decorators = ""
    for node in tree.root_node.named_children:
        if node.type == "decorators":
            decorators = text(node)
            continue
        if node.type == kind and text(node.named_children[0]) == name:
            return node, decorators
        if node.type != "comment":
            decorators = ""
    raise AssertionError(f"no {kind} {name}")


def _param_default(tree: Tree, name: str) -> str:
    decl, _ = _decorated(tree, "parameter_declaration", name)
    return text(decl).split("=", 1)[1].strip()


def _body(file: str, type_prefix: str, symbol: str | None = None) -> Node:
    tree = parse(INFRA / file)
    found = [
        (decl, body)
        for decl, body in resource_declarations(tree, type_prefix)
        if symbol is None or text(decl.named_children[0]) == symbol
    ]
    assert len(found) == 1, f"{file}: {len(found)} resources {type_prefix} {symbol or ''}"
    return found[0][1]


def _props(body: Node) -> dict[str, Node]:
    return object_properties(object_properties(body)["properties"])


def _condition(file: str, symbol: str) -> str:
    """The `if (...)` condition of a conditional resource, '' when unconditional."""
    tree = parse(INFRA / file)
    for decl in walk(tree.root_node):
        if decl.type == "resource_declaration" and text(decl.named_children[0]) == symbol:
            value = decl.named_children[-1]
            return text(value.named_children[0]) if value.type == "if_statement" else ""
    raise AssertionError(f"{file}: no resource {symbol}")


# --- 1. languageVersion 2.0 must not pair a created resource with its existing twin -----

# Declarations that make the compiler emit languageVersion 2.0 (symbolic-name resources).
_V2_NODES = {"user_defined_function", "type_declaration", "import_functionality"}


def _v2_constructs(tree: Tree) -> list[str]:
    found = [text(n)[:50] for n in tree.root_node.named_children if n.type in _V2_NODES]
    for node in tree.root_node.named_children:
        if node.type == "variable_declaration" and len(node.named_children) > 2:
            found.append(f"typed variable: {text(node)[:50]}")  # var x string = ...
        if node.type == "parameter_declaration" and re.match(r"param \w+ \w+\?", text(node)):
            found.append(f"nullable type: {text(node)[:50]}")
        if node.type == "module_declaration":
            body = node.named_children[-1]
            while body.type in ("if_statement", "for_statement"):
                body = body.named_children[-1]
            if body.type == "object" and "name" not in object_properties(body):
                found.append(f"module without a name: {text(node)[:50]}")
    return found


def _existing_twins(tree: Tree) -> list[str]:
    """Resources declared `existing` with the type and name of one the file creates."""
    created: set[tuple[str, str]] = set()
    existing: set[tuple[str, str]] = set()
    for decl in walk(tree.root_node):
        if decl.type != "resource_declaration":
            continue
        type_node = next(c for c in decl.named_children if c.type == "string")
        body = decl.named_children[-1]
        while body.type in ("if_statement", "for_statement"):
            body = body.named_children[-1]
        if body.type != "object" or "name" not in object_properties(body):
            continue
        key = (string_value(type_node) or "", text(object_properties(body)["name"]))
        is_existing = " existing " in text(decl).split("{", 1)[0] + " "
        (existing if is_existing else created).add(key)
    return sorted(f"{t} {n}" for t, n in created & existing)


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_no_languageversion_2_in_a_file_with_an_existing_twin(path: Path) -> None:
    tree = parse(path)
    twins = _existing_twins(tree)
    if twins:
        assert not _v2_constructs(tree), (
            f"{_rel(path)} pairs created and existing resources {twins} with constructs that "
            f"switch it to languageVersion 2.0 (duplicate resource IDs): {_v2_constructs(tree)}"
        )


def test_the_backup_account_is_such_a_pair_and_the_check_sees_a_func() -> None:
    tree = parse(INFRA / "app" / "backup-storage.bicep")
    assert "Microsoft.Storage/storageAccounts@2023-05-01 name" in _existing_twins(tree)
    # The check itself: the function the file used to have would be caught.
    from tests.infra import _PARSER

    with_func = _PARSER.parse(
        (INFRA / "app" / "backup-storage.bicep").read_bytes()
        + b"\nfunc trimTrailingSlash(url string) string => url\n"
    )
    assert _v2_constructs(with_func)


# --- 3. a conditional module's outputs only through .? -------------------------------------


def _conditional_modules(tree: Tree) -> set[str]:
    names: set[str] = set()
    for node in tree.root_node.named_children:
        if node.type == "module_declaration":
            value = node.named_children[-1]
            if value.type == "if_statement" or (
                value.type == "for_statement" and "if (" in text(value)
            ):
                names.add(text(node.named_children[0]))
    return names


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_conditional_module_outputs_are_read_only_through_safe_access(path: Path) -> None:
    tree = parse(path)
    source = "\n".join(
        line.split("//", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()
    )
    unsafe = [
        name
        for name in sorted(_conditional_modules(tree))
        if re.search(rf"\b{name}(\[[^\]]*\])?\.outputs\b", source)
    ]
    assert not unsafe, f"{_rel(path)}: read with .outputs instead of .?outputs: {unsafe} (BCP318)"


def test_main_has_conditional_modules_whose_outputs_it_reads() -> None:
    tree = parse(INFRA / "main.bicep")
    conditional = _conditional_modules(tree)
    assert {"apimUserIdentity", "apimRoleDefinitions"} <= conditional
    main = (INFRA / "main.bicep").read_text()
    assert "apimUserIdentity.?outputs.clientId ?? ''" in main
    assert "apimRoleDefinitions.?outputs.sourceRoleId ?? operatorRole" in main


# --- 4. location limited to Flex Consumption regions; no hard-coded cloud hosts ----------


# The location list of Microsoft's Flex Consumption azd quickstart
# (Azure-Samples/functions-quickstart-python-http-azd, infra/main.bicep), read for issue 18;
# eastus2euap, a canary region, left out. Extend both lists together when
# `az functionapp list-flexconsumption-locations` shows a new region.
_QUICKSTART_REGIONS = {
    "australiaeast", "australiasoutheast", "brazilsouth", "canadacentral", "centralindia",
    "centralus", "eastasia", "eastus", "eastus2", "francecentral", "germanywestcentral",
    "italynorth", "japaneast", "koreacentral", "northcentralus", "northeurope", "norwayeast",
    "southafricanorth", "southcentralus", "southeastasia", "southindia", "spaincentral",
    "swedencentral", "uaenorth", "uksouth", "ukwest", "westcentralus", "westeurope", "westus",
    "westus2", "westus3",
}  # fmt: skip


def test_location_is_limited_to_regions_with_flex_consumption() -> None:
    _decl, decorators = _decorated(parse(INFRA / "main.bicep"), "parameter_declaration", "location")
    allowed = re.search(r"@allowed\(\[(.*?)\]\)", decorators, re.DOTALL)
    assert allowed, "location has no @allowed list"
    regions = re.findall(r"'([^']*)'", allowed.group(1))
    assert len(regions) >= 15
    # No region Microsoft's own Flex Consumption list lacks (issue 18 found five).
    assert set(regions) <= _QUICKSTART_REGIONS, sorted(set(regions) - _QUICKSTART_REGIONS)
    assert all(re.fullmatch(r"[a-z]+[0-9]?", r) for r in regions), regions
    assert {"westeurope", "eastus", "northeurope", "uksouth"} <= set(regions)
    # The README's quick start uses a region the list allows.
    readme = (INFRA / "README.md").read_text()
    used = re.search(r"azd env set AZURE_LOCATION (\w+)", readme)
    assert used and used.group(1) in regions


def _allowed_ints(file: str, param: str) -> set[int]:
    _decl, decorators = _decorated(parse(INFRA / file), "parameter_declaration", param)
    allowed = re.search(r"@allowed\(\[(.*?)\]\)", decorators, re.DOTALL)
    assert allowed, f"{file}: {param} has no @allowed list"
    return {int(v) for v in re.findall(r"\d+", allowed.group(1))}


def test_instance_memory_offers_every_flex_consumption_size() -> None:
    # 512, 2,048 and 4,096 MB (Microsoft Learn, "Azure Functions Flex Consumption plan
    # hosting", Instance memory); issue 18 found 512 missing.
    sizes = {512, 2048, 4096}
    assert _allowed_ints("main.bicep", "instanceMemoryMB") == sizes
    assert _allowed_ints("app/function-app.bicep", "instanceMemoryMB") == sizes
    assert _param_default(parse(INFRA / "main.bicep"), "instanceMemoryMB") == "2048"
    main = (INFRA / "main.bicep").read_text()
    block = main.split("module functionApp ", 1)[1].split("\nmodule ", 1)[0]
    assert "instanceMemoryMB: instanceMemoryMB" in block
    site = _props(_body("app/function-app.bicep", "Microsoft.Web/sites@"))
    scale = [n for n in walk(site["functionAppConfig"]) if n.type == "object_property"]
    assert any(text(n) == "instanceMemoryMB: instanceMemoryMB" for n in scale)


# The Bicep linter's no-hardcoded-env-urls hosts (its default configuration).
_CLOUD_HOSTS = (
    "api.loganalytics.io",
    "asazure.windows.net",
    "azuredatalakeanalytics.net",
    "azuredatalakestore.net",
    "batch.core.windows.net",
    "core.windows.net",
    "database.windows.net",
    "datalake.azure.net",
    "gallery.azure.com",
    "graph.windows.net",
    "login.microsoftonline.com",
    "management.azure.com",
    "management.core.windows.net",
    "trafficmanager.net",
    "vault.azure.net",
)


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_no_hardcoded_environment_urls_even_in_descriptions(path: Path) -> None:
    found = [
        f"line {n.start_point[0] + 1}: {host}"
        for n in walk(parse(path).root_node)
        if n.type == "string"
        for host in _CLOUD_HOSTS
        if host in text(n).lower()
    ]
    assert not found, f"{_rel(path)}: {found} (use environment() instead)"


# --- resource IDs are normalised before any name is taken from them (issue 18) -----------

# The parameters that hold resource IDs, and the variables holding their normalised form.
_ID_LISTS = {
    "apimServiceIds": "apimIds",
    "restoreTargetIds": "restoreIdsGiven",
    "alertActionGroupIds": "extraActionGroupIds",
}
_SINGLE_IDS = {
    "existingBackupStorageAccountId": "existingBackupAccountId",
    "apimBackupIdentityId": "apimBackupIdentity",
    "backupStorageKeyVaultId": "backupKeyVaultId",
    "functionSubnetId": "subnetId",
}
_NORMALISED = "'/${join(filter(split(%s, '/'), segment => length(segment) > 0), '/')}'"


def test_every_resource_id_parameter_is_normalised_once() -> None:
    declared = variables(parse(INFRA / "main.bicep"))
    for param, var in _ID_LISTS.items():
        assert text(declared[var]) == (
            f"[for raw in filter(split({param}, idSeparators), token => length(trim(token)) > 0): "
            + _NORMALISED % "raw"
            + "]"
        ), var
    for param, var in _SINGLE_IDS.items():
        assert (_NORMALISED % f"trim({param})") in text(declared[var]), var


def test_no_name_or_scope_is_taken_from_a_raw_resource_id_parameter() -> None:
    # A raw ID parameter may be tested for emptiness, or normalised in its own variable;
    # every split(), last() and setting works on the normalised form.
    tree = parse(INFRA / "main.bicep")
    normalisers = {*_ID_LISTS.values(), *_SINGLE_IDS.values()}
    raw_params = {*_ID_LISTS, *_SINGLE_IDS}
    misuse: list[str] = []
    for node in walk(tree.root_node):
        if node.type != "identifier" or text(node) not in raw_params:
            continue
        if node.parent is not None and node.parent.type == "parameter_declaration":
            continue
        owner = node.parent
        while owner is not None and owner.type != "variable_declaration":
            owner = owner.parent
        if owner is not None and text(owner.named_children[0]) in normalisers:
            continue
        call = node.parent.parent if node.parent is not None else None  # x -> arguments -> call
        if call is not None and call.type == "call_expression":
            name = text(call.named_children[0])
            outer = call.parent.parent if call.parent is not None else None
            if name == "empty" or (
                name == "trim" and outer is not None and text(outer.named_children[0]) == "empty"
            ):
                continue
        context = text(node.parent) if node.parent is not None else ""
        misuse.append(f"line {node.start_point[0] + 1}: {context[:60]}")
    assert not misuse, misuse


def _normalise(resource_id: str) -> str:
    """What the normalising expression does, in Python (Bicep's split() keeps empty
    strings, as str.split does; filter() drops them)."""
    return "/" + "/".join(s for s in resource_id.strip().split("/") if len(s) > 0)


@pytest.mark.parametrize(
    "given",
    [
        "/subscriptions/0000/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/contoso",
        "/subscriptions/0000/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/contoso/",
        "/subscriptions/0000/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/contoso//",
        "subscriptions/0000//resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/contoso",
    ],
)
def test_a_trailing_slash_gives_the_same_names_as_the_plain_id(given: str) -> None:
    from shared.rules.naming import ServiceId

    normalised = _normalise(given).split("/")
    # main.bicep reads [2], [4] and last() of the normalised ID.
    assert (normalised[2], normalised[4], normalised[-1]) == ("0000", "rg-apim", "contoso")
    if given.startswith("/"):  # what the product itself makes of the same ID
        assert ServiceId.parse(given.replace("0000", "0" * 36)).name == normalised[-1]
    # The bug: the raw ID's last segment is empty with a trailing slash.
    assert given.endswith("/") == (given.split("/")[-1] == "")


# --- ransomware-safe backup account -----------------------------------------------------


def test_backup_account_redundancy_is_zone_or_geo_never_lrs() -> None:
    main = parse(INFRA / "main.bicep")
    _decl, decorators = _decorated(main, "parameter_declaration", "backupStorageSku")
    allowed = set(re.findall(r"'(Standard_\w+)'", decorators))
    assert allowed and not any("LRS" in sku and "GRS" not in sku for sku in allowed), allowed
    assert {"Standard_ZRS", "Standard_GRS"} <= allowed
    assert _param_default(main, "backupStorageSku") == "'Standard_GRS'"
    assert (
        text(variables(main)["backupSku"])
        == "empty(backupStorageSku) ? 'Standard_GRS' : backupStorageSku"
    )
    assert "skuName: backupSku" in text(main.root_node)
    tree = parse(INFRA / "app" / "backup-storage.bicep")
    assert _param_default(tree, "skuName") == "'Standard_GRS'"
    account = _body(
        "app/backup-storage.bicep", "Microsoft.Storage/storageAccounts@", "createdAccount"
    )
    assert text(object_properties(object_properties(account)["sku"])["name"]) == "skuName"


def test_backup_blob_service_has_versioning_and_soft_delete() -> None:
    tree = parse(INFRA / "app" / "backup-storage.bicep")
    props = _props(
        _body(
            "app/backup-storage.bicep",
            "Microsoft.Storage/storageAccounts/blobServices@",
            "createdBlobService",
        )
    )
    assert text(props["isVersioningEnabled"]) == "blobVersioning"
    assert _param_default(tree, "blobVersioning") == "true"
    for policy in ("deleteRetentionPolicy", "containerDeleteRetentionPolicy"):
        settings = object_properties(props[policy])
        assert text(settings["enabled"]) == "true", policy
        assert text(settings["days"]) == "softDeleteRetentionDays"
    assert int(_param_default(tree, "softDeleteRetentionDays")) >= 7


def test_container_immutability_never_outlasts_retention() -> None:
    file = "app/backup-storage.bicep"
    body = _body(
        file, "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@"
    )
    props = _props(body)
    assert text(props["immutabilityPeriodSinceCreationInDays"]) == "immutabilityDays"
    assert text(object_properties(body)["parent"]) == "container"
    assert _condition(file, "immutability") == "(immutabilityDays > 0)"
    tree = parse(INFRA / file)
    _decl, decorators = _decorated(tree, "parameter_declaration", "immutabilityDays")
    assert "@maxValue(30)" in decorators  # a backup is restorable for 30 days
    main = parse(INFRA / "main.bicep")
    # Capped at retention, so the policy has lapsed whenever pruning wants a blob gone.
    assert "min(backupImmutabilityDays, retentionDays)" in text(variables(main)["immutabilityDays"])
    assert _param_default(main, "backupImmutabilityDays") == "30"
    assert "immutabilityDays: immutabilityDays" in text(main.root_node)


def test_immutability_is_opt_in_until_apim_is_seen_writing_under_it() -> None:
    # Nothing public says how APIM writes a backup; a policy that refuses that write
    # would break every backup (issue 18). Off unless the deployer turns it on.
    main = parse(INFRA / "main.bicep")
    assert _param_default(main, "backupImmutability") == "'off'"
    _decl, decorators = _decorated(main, "parameter_declaration", "backupImmutability")
    allowed = set(re.findall(r"'(\w*)'", decorators.split("@description", 1)[0]))
    assert allowed == {"", "off", "on", "locked"}
    assert text(variables(main)["immutabilityDays"]) == (
        "backupImmutability == 'on' ? min(backupImmutabilityDays, retentionDays) : 0"
    )
    # Off means no policy resource at all (the module's default too).
    assert _param_default(parse(INFRA / "app" / "backup-storage.bicep"), "immutabilityDays") == "0"
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["backupImmutability"]["value"] == "${BACKUP_IMMUTABILITY}"


def test_re_provisioning_after_locking_leaves_the_locked_policy_alone() -> None:
    # Resource Manager refuses a PUT of a locked policy: with 'locked' no policy resource
    # is deployed (immutabilityDays is 0 for everything but 'on'), and the README's
    # workaround names that value of a variable main.parameters.json reads.
    main = parse(INFRA / "main.bicep")
    assert text(variables(main)["immutabilityDays"]).startswith("backupImmutability == 'on' ?")
    assert text(variables(main)["immutabilityDays"]).endswith(": 0")
    readme = (INFRA / "README.md").read_text()
    assert "azd env set BACKUP_IMMUTABILITY locked" in readme
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["backupImmutability"]["value"] == "${BACKUP_IMMUTABILITY}"


# Variables azd sets or reads itself; every other one the docs tell you to set must be
# read by main.parameters.json, or setting it does nothing.
_AZD_OWN = {"AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_SUBSCRIPTION_ID", "AZURE_PRINCIPAL_ID"}


def test_every_azd_variable_the_docs_set_is_read_by_main_parameters() -> None:
    read = set(re.findall(r"\$\{(\w+)", (INFRA / "main.parameters.json").read_text()))
    docs = [INFRA / "README.md", REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    told = {
        (doc.name, name)
        for doc in docs
        for name in re.findall(r"azd env set ([A-Z][A-Z0-9_]+)\b", doc.read_text())
    }
    assert any(name == "BACKUP_IMMUTABILITY" for _doc, name in told)
    placeholder = {"NAME"}  # "azd env set NAME value", the general form
    unread = sorted((doc, n) for doc, n in told if n not in read | _AZD_OWN | placeholder)
    assert not unread, unread


def test_immutability_when_on_lets_a_writer_add_blocks_but_never_overwrite() -> None:
    props = _props(
        _body(
            "app/backup-storage.bicep",
            "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@",
        )
    )
    # Block and append blobs may get new blocks (a service that creates the blob, then
    # adds to it); allowProtectedAppendWrites (append blobs only) is mutually exclusive.
    assert text(props["allowProtectedAppendWritesAll"]) == "true"
    assert "allowProtectedAppendWrites" not in props


def test_lifecycle_backstop_also_deletes_previous_versions() -> None:
    actions = object_properties(
        next(
            n.named_children[-1]
            for n in walk(
                _body(
                    "app/backup-storage.bicep",
                    "Microsoft.Storage/storageAccounts/managementPolicies@",
                )
            )
            if n.type == "object_property" and text(n.named_children[0]) == "actions"
        )
    )
    base = object_properties(object_properties(actions["baseBlob"])["delete"])
    version = object_properties(object_properties(actions["version"])["delete"])
    assert text(base["daysAfterModificationGreaterThan"]) == "backupBlobMaxAgeDays"
    assert text(version["daysAfterCreationGreaterThan"]) == "backupBlobMaxAgeDays"


def test_new_backup_account_gets_a_cannot_delete_lock() -> None:
    file = "app/backup-storage.bicep"
    body = _body(file, "Microsoft.Authorization/locks@")
    assert string_value(_props(body)["level"]) == "CanNotDelete"
    assert text(object_properties(body)["scope"]) == "createdAccount"
    lock = next(
        d for d, _b in resource_declarations(parse(INFRA / file), "Microsoft.Authorization/locks@")
    )
    assert _condition(file, text(lock.named_children[0])) == "(createAccount && deleteLock)"
    assert _param_default(parse(INFRA / file), "deleteLock") == "true"


def test_network_lockdown_denies_by_default_and_keeps_the_trusted_services_bypass() -> None:
    acls = object_properties(
        _props(
            _body(
                "app/backup-storage.bicep", "Microsoft.Storage/storageAccounts@", "createdAccount"
            )
        )["networkAcls"]
    )
    assert string_value(acls["bypass"]) == "AzureServices"  # APIM's system identity
    assert text(acls["defaultAction"]) == "restrictNetworkAccess ? 'Deny' : 'Allow'"
    assert text(acls["virtualNetworkRules"]) == "subnetRules"
    main = (INFRA / "main.bicep").read_text()
    assert "restrictNetworkAccess: backupNetworkLockdown" in main
    assert "allowedSubnetIds: empty(subnetId) ? [] : [subnetId]" in main
    site = _props(_body("app/function-app.bicep", "Microsoft.Web/sites@"))
    assert "virtualNetworkSubnetId" in text(site["virtualNetworkSubnetId"])


# --- least privilege --------------------------------------------------------------------

_BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"


def test_container_roles_are_on_the_container_with_a_blob_name_condition() -> None:
    file = "app/container-roles.bicep"
    assignment = _props(_body(file, "Microsoft.Authorization/roleAssignments@"))
    body = _body(file, "Microsoft.Authorization/roleAssignments@")
    assert text(object_properties(body)["scope"]) == "container"
    assert text(assignment["condition"]) == "empty(blobPattern) ? null : nameCondition"
    assert text(assignment["conditionVersion"]) == "empty(blobPattern) ? null : '2.0'"
    tree = parse(INFRA / file)
    declared = variables(tree)
    assert text(declared["blobActions"]) == f"'{_BLOBS}'"
    assert text(declared["nameCondition"]) == "'${readCondition} AND ${writeCondition}'"
    write = text(declared["writeCondition"]).replace("\\'", "'")  # Bicep's \' is '
    read = text(declared["readCondition"]).replace("\\'", "'")
    # Write, add, delete and move (rename, in Storage Blob Data Contributor): only on
    # blobs whose whole name matches the service's pattern.
    for action in ("write'}", "add/action'}", "delete'}", "move/action'}"):
        assert "!(ActionMatches{'${blobActions}/" + action in write, action
    assert "read" not in write
    assert write.endswith("OR (@Resource[${blobActions}:path] StringLike '${blobPattern}'))'")
    # Read (other than List): the own pattern or one of readPatterns.
    assert (
        "!(ActionMatches{'${blobActions}/read'} AND NOT SubOperationMatches{'Blob.List'})" in read
    )
    assert read.endswith("OR (${join(readPaths, ' OR ')}))'"), read
    paths = text(declared["readPaths"]).replace("\\'", "'")
    assert paths == (
        "[for pattern in union([blobPattern], readPatterns): "
        "'@Resource[${blobActions}:path] StringLike '${pattern}'']"
    ), paths
    # Rendered for a restore target that is also a source: balanced, both halves ANDed.
    own, other = "contoso" + _STAMP_PATTERN, "fabrikam" + _STAMP_PATTERN
    rendered = _render_condition(read, write, own, [own, other])
    assert rendered.count("(") == rendered.count(")")
    assert rendered.count(f"StringLike '{own}'") == 2  # read and write
    assert rendered.count(f"StringLike '{other}'") == 1  # read only


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_no_blob_condition_is_a_bare_name_prefix(path: Path) -> None:
    # A prefix condition ('<service>-') lets 'contoso' reach every backup of 'contoso-dr'.
    assert "StringStartsWith" not in path.read_text(encoding="utf-8"), _rel(path)


def _render_condition(read: str, write: str, pattern: str, read_patterns: list[str]) -> str:
    """The condition Resource Manager receives, from the Bicep strings (for a sanity check
    of its shape, not a parser of the condition language)."""
    paths = [
        f"@Resource[{_BLOBS}:path] StringLike '{p}'"
        for p in dict.fromkeys([pattern, *read_patterns])
    ]

    def fill(template: str) -> str:
        return (
            template.strip("'")
            .replace("${blobActions}", _BLOBS)
            .replace("${blobPattern}", pattern)
            .replace("${join(readPaths, ' OR ')}", " OR ".join(paths))
        )

    return f"{fill(read)} AND {fill(write)}"


def _string_like(value: str, pattern: str) -> bool:
    """ABAC's StringLike (Microsoft Learn, "Azure role assignment condition format and
    syntax"): case-sensitive, whole string, '*' any run of characters, '?' exactly one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def test_string_like_stand_in_follows_the_documented_examples() -> None:
    # The examples of the condition-format page, so the stand-in means what Azure means.
    assert _string_like("abcd", "a*c?")
    assert not _string_like("abcd", "A*C?")
    assert not _string_like("abcd", "a*c")


# The part of a backup name after '<service>' in main.bicep (read from the template).
_STAMP_PATTERN = "-????????T??????Z.apimbackup"


def _apim_pattern(service: str) -> str:
    """The StringLike pattern main.bicep grants the APIM identity of `service`."""
    main = parse(INFRA / "main.bicep")
    stamp = string_value(variables(main)["backupNameStamp"])
    assert stamp == _STAMP_PATTERN
    return service.lower() + stamp


def test_each_apim_identity_only_reaches_its_own_backups() -> None:
    main = (INFRA / "main.bicep").read_text()
    block = main.split("module apimSystemIdentityStorageRoles", 1)[1].split("\nmodule ", 1)[0]
    assert "'app/container-roles.bicep'" in block
    # Backup names are '<service>-<yyyyMMdd>T<HHmmss>Z.apimbackup' (shared/rules/naming.py).
    assert "blobPattern: '${last(split(id, '/'))}${backupNameStamp}'" in block
    # A restore target restores other services' backups with its own identity: it reads
    # (never writes) the backups of every source service.
    assert "readPatterns: contains(restoreIdsLower, id) ? sourcePatterns : []" in block
    assert (
        "var sourcePatterns = [for id in apimIdsLower: '${last(split(id, '/'))}${backupNameStamp}']"
        in main
    )
    # The service name in the pattern is the lower-cased one, as in the backup's name.
    assert "for id in apimIdsLower" in main and "accessIds = union(apimIdsLower" in main


@pytest.mark.parametrize("service", ["contoso", "contoso-dr", "Contoso-APIM-2", "a1"])
def test_the_blob_pattern_matches_every_backup_name_of_its_service(service: str) -> None:
    from shared.rules.naming import backup_name

    pattern = _apim_pattern(service)
    for moment in (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime.now(UTC),
    ):
        assert _string_like(backup_name(service, moment), pattern), (service, moment)


def test_the_blob_pattern_reaches_no_other_service_and_no_other_blob() -> None:
    from shared.rules.manifest import manifest_blob_name
    from shared.rules.naming import backup_name

    moment = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    contoso = _apim_pattern("contoso")
    # The hyphen case of issue 18: 'contoso-' starts every backup of 'contoso-dr'.
    for other in ("contoso-dr", "contoso-1", "contosodr", "contos", "xcontoso", "contoso-2026"):
        name = backup_name(other, moment)
        assert not _string_like(name, contoso), name
    # ...and the other way round.
    assert not _string_like(backup_name("contoso", moment), _apim_pattern("contoso-dr"))
    # The function writes and reads the manifests; the APIM identity needs no access.
    assert not _string_like(manifest_blob_name(backup_name("contoso", moment)), contoso)
    for name in (
        "contoso-",
        "contoso-x",
        "contoso-20260304T050607Z.apimbackup.old",
        "dir/contoso-20260304T050607Z.apimbackup",
        "CONTOSO-20260304T050607Z.apimbackup",
    ):
        assert not _string_like(name, contoso), name


def test_data_roles_on_the_backup_account_are_never_account_wide() -> None:
    main = (INFRA / "main.bicep").read_text()
    # Data roles on the backup account never cover the whole account: the only
    # account-wide grant there is Reader (control plane, for the CORS pre-check).
    for module in re.findall(r"module (\w+) 'app/storage-roles\.bicep'", main):
        grant = main.split(f"module {module} ", 1)[1].split("\nmodule ", 1)[0]
        if "backupStorage.outputs.name" in grant:
            granted = re.findall(r"\broles\.(\w+)", grant.split("roleDefinitionIds", 1)[1])
            assert granted == ["reader"], (module, granted)


def test_function_data_roles_are_on_the_container_and_the_two_tables() -> None:
    main = (INFRA / "main.bicep").read_text()
    container = main.split("module backupContainerFunctionRoles", 1)[1].split("\nmodule ", 1)[0]
    assert (
        "'app/container-roles.bicep'" in container
        and "roles.storageBlobDataContributor" in container
    )
    tables = main.split("module backupTableFunctionRoles", 1)[1].split("\nmodule ", 1)[0]
    assert "'app/table-roles.bicep'" in tables
    assert "ledgerTable" in tables and "operationsTable" in tables
    body = _body("app/table-roles.bicep", "Microsoft.Authorization/roleAssignments@")
    assert text(object_properties(body)["scope"]) == "tables[i]"


def test_key_vault_role_is_on_the_one_secret() -> None:
    body = _body("app/key-vault-access.bicep", "Microsoft.Authorization/roleAssignments@")
    assert text(object_properties(body)["scope"]) == "secret"
    secret = _body("app/key-vault-access.bicep", "Microsoft.KeyVault/vaults/secrets@")
    assert text(object_properties(secret)["name"]) == "secretName"
    main = parse(INFRA / "main.bicep")
    assert "secretName: keyVaultSecretName" in text(main.root_node)
    assert "split(backupStorageKeySecretUri, '/')[4]" in text(variables(main)["keyVaultSecretName"])


def _role_actions(symbol: str) -> tuple[set[str], list[str]]:
    """The actions of a custom role, and those without a comment on the line above."""
    path = INFRA / "app" / "apim-roles.bicep"
    tree = parse(path)
    lines = path.read_text().splitlines()
    declared = variables(tree)
    actions: set[str] = set()
    unexplained: list[str] = []
    permissions = _props(
        _body("app/apim-roles.bicep", "Microsoft.Authorization/roleDefinitions@", symbol)
    )["permissions"]
    strings = [n for n in walk(permissions) if n.type == "string"]
    strings += [n for n in walk(declared["readActions"]) if n.type == "string"]
    for node in strings:
        value = string_value(node) or ""
        actions.add(value)
        if not lines[node.start_point[0] - 1].strip().startswith("//"):
            unexplained.append(value)
    return actions, unexplained


def test_custom_apim_roles_hold_exactly_the_actions_the_product_calls() -> None:
    read = {
        "Microsoft.ApiManagement/service/read",
        "Microsoft.ApiManagement/service/workspaceLinks/read",
        # Polling the Location a backup or restore answers ({service}/operationresults/...).
        "Microsoft.ApiManagement/service/operationresults/read",
        # The settings manifest and drift read the service's diagnostic settings.
        "Microsoft.Insights/diagnosticSettings/read",
    }
    source, unexplained_source = _role_actions("sourceRole")
    restore, unexplained_restore = _role_actions("restoreRole")
    assert source == read | {"Microsoft.ApiManagement/service/backup/action"}
    assert restore == read | {"Microsoft.ApiManagement/service/restore/action"}
    assert not unexplained_source + unexplained_restore, "each action needs its reason above it"
    # Backup on sources only, restore on restore targets only (APIM_ROLES=custom).
    main = (INFRA / "main.bicep").read_text()
    assert (
        "roleDefinitionIds: apimRoleMode == 'custom' ? "
        "union(contains(apimIdsLower, id) ? [sourceRoleId] : [], "
        "contains(restoreIdsLower, id) ? [restoreRoleId] : []) : "
        "(apimRoleMode == 'define' ? [] : builtinApimRoles)"
    ) in main


def test_no_deployment_assigns_a_custom_role_it_creates_by_default() -> None:
    # Custom role definitions replicate with a delay; assigned in the deployment that
    # creates them, the assignment can fail (RoleDefinitionDoesNotExist). The first
    # azd up therefore uses built-in roles only (issue 18).
    main = parse(INFRA / "main.bicep")
    assert _param_default(main, "apimRoles") == "'builtin'"
    _decl, decorators = _decorated(main, "parameter_declaration", "apimRoles")
    allowed = set(re.findall(r"'(\w*)'", decorators.split("@description", 1)[0]))
    assert allowed == {"", "builtin", "define", "custom"}
    declared = variables(main)
    assert text(declared["apimRoleMode"]) == (
        "apimRoles == 'custom' ? 'custom' : (apimRoles == 'define' ? 'define' : 'builtin')"
    )
    # The definitions are deployed only when asked for (define, custom)...
    module = next(
        n
        for n in main.root_node.named_children
        if n.type == "module_declaration" and text(n.named_children[0]) == "apimRoleDefinitions"
    )
    assert text(module.named_children[-1].named_children[0]) == "(apimRoleMode != 'builtin')"
    # ...and the built-in roles need nothing replicated: Operator (backup, restore,
    # service/*/read) and Reader (the diagnostic settings the manifest copies).
    assert text(declared["builtinApimRoles"]) == "[\n  operatorRole\n  roles.reader\n]"
    assert "'e022efe7-f5ba-4159-bbe4-b44f577e9b61'" in text(declared["operatorRole"])
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["apimRoles"]["value"] == "${APIM_ROLES}"


def test_the_apim_code_calls_no_more_than_the_roles_allow() -> None:
    # The product's Resource Manager calls: service get, workspace links, backup, restore.
    calls = set(
        re.findall(
            r"client\.(api_management_\w+)\.(\w+)\(",
            "".join(p.read_text() for p in (REPO / "shared").rglob("*.py")),
        )
    )
    allowed = {
        ("api_management_service", "get"),
        ("api_management_service", "begin_backup"),
        ("api_management_service", "begin_restore"),
        ("api_management_workspace_links", "list_by_service"),
    }
    assert calls and calls <= allowed, calls - allowed
    # Requests sent by URL (the poll, the diagnostic settings) stay within the roles too.
    # The doctor alone (run by an operator or the postprovision hook, with Reader on the
    # account) reads the storage account and its role assignments, and only reads: its
    # probes, and the account ID the doctor is given (rules/naming builds none else).
    doctor = {
        REPO / "shared/adapters/probes.py": {"Microsoft.Storage", "Microsoft.Authorization"},
        REPO / "shared/rules/naming.py": {"Microsoft.Storage"},
    }
    for path in (REPO / "shared").rglob("*.py"):
        found = set(re.findall(r"providers/(Microsoft\.\w+)", path.read_text()))
        may_call = {"Microsoft.ApiManagement", "Microsoft.Insights"} | doctor.get(path, set())
        assert found <= may_call, (path, found - may_call)
    assert not re.search(
        r"\"(PUT|POST|PATCH|DELETE)\"", (REPO / "shared/adapters/probes.py").read_text()
    )


def _code() -> str:
    return "".join(p.read_text() for p in (REPO / "shared").rglob("*.py"))


# --- diagnostics ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "symbol", "scope", "categories"),
    [
        (
            "app/backup-storage.bicep",
            "blobDiagnostics",
            "blobService",
            {"StorageRead", "StorageWrite", "StorageDelete"},
        ),
        (
            "app/backup-storage.bicep",
            "tableDiagnostics",
            "tableService",
            {"StorageRead", "StorageWrite", "StorageDelete"},
        ),
        ("app/key-vault-access.bicep", "vaultDiagnostics", "vault", {"AuditEvent"}),
    ],
)
def test_diagnostic_settings_send_audit_logs_to_the_workspace(
    file: str, symbol: str, scope: str, categories: set[str]
) -> None:
    body = _body(file, "Microsoft.Insights/diagnosticSettings@", symbol)
    assert text(object_properties(body)["scope"]) == scope
    props = _props(body)
    assert text(props["workspaceId"]) == "logAnalyticsWorkspaceId"
    logs = {
        string_value(object_properties(item)["category"])
        for item in props["logs"].named_children
        if item.type == "object" and text(object_properties(item)["enabled"]) == "true"
    }
    assert logs == categories


def test_no_diagnostic_setting_on_the_flex_consumption_site() -> None:
    # Flex Consumption does not support diagnostic settings; the app's logs reach the
    # workspace through Application Insights (AppTraces), where the alert rules read them.
    tree = parse(INFRA / "app/function-app.bicep")
    assert not resource_declarations(tree, "Microsoft.Insights/diagnosticSettings@")


def test_main_wires_the_workspace_into_every_diagnostic_setting() -> None:
    main = (INFRA / "main.bicep").read_text()
    for module in ("backupStorage", "keyVaultAccess"):
        block = main.split(f"module {module} ", 1)[1].split("\nmodule ", 1)[0]
        assert "logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId" in block, module


# --- FTP, Easy Auth ----------------------------------------------------------------------


def test_ftp_is_off_without_the_ftps_state_flex_consumption_refuses() -> None:
    source = (INFRA / "app" / "function-app.bicep").read_text()
    code = "\n".join(line.split("//", 1)[0] for line in source.splitlines())
    assert "ftpsState" not in code  # ARM error 51021 on Flex Consumption
    tree = parse(INFRA / "app" / "function-app.bicep")
    policies = {
        string_value(object_properties(body)["name"]): text(_props(body)["allow"])
        for _d, body in resource_declarations(
            tree, "Microsoft.Web/sites/basicPublishingCredentialsPolicies@"
        )
    }
    assert policies == {"ftp": "false", "scm": "false"}


def test_entra_mode_puts_app_service_authentication_in_front() -> None:
    file = "app/function-app.bicep"
    tree = parse(INFRA / file)
    [(decl, body)] = [
        (d, b)
        for d, b in resource_declarations(tree, "Microsoft.Web/sites/config@")
        if string_value(object_properties(b)["name"]) == "authsettingsV2"
    ]
    assert _condition(file, text(decl.named_children[0])) == "(apiAuth == 'entra')"
    props = _props(body)
    validation = object_properties(props["globalValidation"])
    assert text(validation["requireAuthentication"]) == "true"
    assert string_value(validation["unauthenticatedClientAction"]) == "Return401"
    aad = object_properties(object_properties(props["identityProviders"])["azureActiveDirectory"])
    audiences = text(object_properties(aad["validation"])["allowedAudiences"])
    assert "entraAppIdUri" in audiences
    issuer = text(object_properties(aad["registration"])["openIdIssuer"])
    assert "environment().authentication.loginEndpoint" in issuer  # no hard-coded cloud
    assert text(app_settings()["API_AUTH"].value) == "apiAuth"
    _d, decorators = _decorated(tree, "parameter_declaration", "apiAuth")
    assert "'functionKey'" in decorators and "'entra'" in decorators


def test_the_entra_token_comment_and_the_readme_step_it_relies_on_agree() -> None:
    # The site expects v2 tokens (issuer .../v2.0, audience the client id); that holds
    # only because the README's app-registration step asks for v2 tokens (issue 18).
    source = (INFRA / "app" / "function-app.bicep").read_text()
    header = source.split("resource authSettings ", 1)[0].rsplit("\n\n", 1)[-1]
    block = source.split("azureActiveDirectory: {", 1)[1].split("allowedAudiences: [", 1)[0]
    comment = " ".join(
        line.strip().removeprefix("//").strip()
        for line in (header + block).splitlines()
        if line.strip().startswith("//")
    )
    assert "requestedAccessTokenVersion=2" in comment
    assert "infra/README.md" in comment and "step 1" in comment
    assert "sts.windows.net" in comment  # what a v1 token would carry instead
    assert "/v2.0'" in block  # the issuer the comment describes
    readme = (INFRA / "README.md").read_text()
    step1 = readme.split("### 1. The app registration", 1)[1].split("### 2.", 1)[0]
    assert "api.requestedAccessTokenVersion=2" in step1


# --- alerts -------------------------------------------------------------------------------

SIGNALS = {
    "BackupFailed",
    "RestoreFailed",
    "ScheduleOwed",
    "RpoBreached",
    "OperationUrlRejected",
    "HousekeepingStepFailed",
    "ChangeUnprotected",
}


def _alert_signals() -> set[str]:
    tree = parse(INFRA / "app" / "alerts.bicep")
    return {
        string_value(object_properties(item)["name"]) or ""
        for item in variables(tree)["signals"].named_children
        if item.type == "object"
    }


def test_one_alert_rule_per_signal_on_its_apptraces_message() -> None:
    assert _alert_signals() == SIGNALS
    rule = _props(_body("app/alerts.bicep", "Microsoft.Insights/scheduledQueryRules@"))
    criterion = object_properties(rule["criteria"]).get("allOf")
    assert criterion is not None
    query = text(object_properties(criterion.named_children[0])["query"])
    # The message format of shared/signals.py: `SIGNAL <Name> <JSON>`, in AppTraces.
    assert query.startswith('\'AppTraces | where _ResourceId =~ "${applicationInsightsId}"')
    assert 'Message startswith "SIGNAL ${signal.name} "' in query
    assert "extend service = tostring(fields.service)" in query
    assert text(rule["scopes"]) == "[\n        logAnalyticsWorkspaceId\n      ]"
    assert "'service'" in text(object_properties(criterion.named_children[0])["dimensions"])


@pytest.mark.parametrize("path", bicep_files(), ids=_rel)
def test_every_log_alert_rule_skips_query_validation(path: Path) -> None:
    # A first deployment creates the workspace and the rules together: AppTraces has no
    # row yet, and query validation has been reported to refuse such a rule (issue 18).
    rules = resource_declarations(parse(path), "Microsoft.Insights/scheduledQueryRules@")
    for _decl, body in rules:
        props = _props(body)
        assert "skipQueryValidation" in props, _rel(path)
        assert text(props["skipQueryValidation"]) == "true", _rel(path)


def test_the_alert_rules_exist_where_skip_query_validation_is_checked() -> None:
    rules = resource_declarations(
        parse(INFRA / "app" / "alerts.bicep"), "Microsoft.Insights/scheduledQueryRules@"
    )
    assert len(rules) == 1  # one declaration, a loop over the signals


def test_signals_are_never_sampled_out_of_application_insights() -> None:
    # The signals are log records (AppTraces); adaptive sampling may drop traces under
    # load, and an alert must not depend on luck.
    host = json.loads((REPO / "host.json").read_text())
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    excluded = set(sampling["excludedTypes"].split(";"))
    assert not sampling["isEnabled"] or "Trace" in excluded
    levels = host["logging"]["logLevel"]
    assert levels.get("Function", levels["default"]) in ("Information", "Warning", "Trace", "Debug")


def test_action_group_only_with_an_alert_email() -> None:
    assert _condition("app/alerts.bicep", "actionGroup") == "(!empty(alertEmail))"
    tree = parse(INFRA / "app" / "alerts.bicep")
    assert text(variables(tree)["ownActionGroups"]) == "empty(alertEmail) ? [] : [actionGroup.id]"
    main = parse(INFRA / "main.bicep")
    assert _param_default(main, "alertEmail") == "''"
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["alertEmail"]["value"] == "${ALERT_EMAIL}"


def test_alert_rules_cover_every_signal_the_code_emits() -> None:
    # Every signal the product can emit (shared/signals.py) has exactly one alert rule, and
    # no rule waits for a signal the code no longer emits.
    from shared.signals import Signal

    emitted = {s.value for s in Signal}
    assert emitted == _alert_signals()
    source = "".join(p.read_text() for p in (REPO / "shared").rglob("*.py"))
    used = set(re.findall(r"\bSignal\.([A-Z_]+)\b", source))
    assert {s.name for s in Signal} <= used  # each is emitted somewhere
