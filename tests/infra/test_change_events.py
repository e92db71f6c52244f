"""The Event Grid wiring of change backups (infra/main.bicep, changeEvents; the modules
change-topic-apim, change-topic-group, change-subscription, blob-container): off unless
asked, filtered to exactly what the product's rule counts, delivered to the function the
app defines, dead-lettered with a least-privilege role (docs/change-backups.md)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from tree_sitter import Node

from shared.rules.changes import ARM_ACTION, ARM_CHANGES, OWN_ACTIONS, Verdict, classify
from shared.rules.naming import ServiceId
from tests.infra import (
    INFRA,
    REPO,
    object_properties,
    parse,
    resource_declarations,
    string_value,
    text,
    variables,
    walk,
)

MAIN = parse(INFRA / "main.bicep")
VARS = variables(MAIN)
SERVICE = ServiceId.parse(
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-apim"
    "/providers/Microsoft.ApiManagement/service/contoso-apim"
)
# APIM's events that report state, not configuration (Microsoft Learn, "Azure API
# Management as an Event Grid source"): never subscribed.
STATE_EVENTS = ("GatewayTokenNearExpiry", "GatewayTokenExpired")
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
SERVICE_NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def strings(node: Node) -> list[str]:
    """The string literals of an array literal."""
    return [v for c in node.named_children if (v := string_value(c)) is not None]


def modules(path: str) -> dict[str, str]:
    """main.bicep's module declarations of ``app/<path>``: name -> declaration text."""
    found = {}
    for decl in walk(MAIN.root_node):
        if decl.type == "module_declaration" and f"'app/{path}'" in text(decl):
            found[text(decl.named_children[0])] = text(decl)
    return found


def apim_event(event_type: str) -> dict[str, object]:
    path = "/apis/orders-api"
    return {
        "id": "5f0c9a84-0000-4000-8000-000000000001",
        "topic": SERVICE.resource_id,
        "subject": path,
        "data": {"resourceUri": SERVICE.resource_id + path},
        "eventType": event_type,
        "eventTime": "2026-12-03T10:00:00Z",
        "dataVersion": "1",
    }


def test_nothing_of_event_grid_is_deployed_unless_change_events_is_on() -> None:
    declared = {
        **modules("change-topic-apim.bicep"),
        **modules("change-topic-group.bicep"),
        **modules("change-subscription.bicep"),
        **modules("blob-container.bicep"),
    }
    dead_letter_roles = {
        name: decl
        for name, decl in modules("container-roles.bicep").items()
        if "changeTopics" in decl
    }
    assert len(declared) == 5 and len(dead_letter_roles) == 2
    for name, decl in {**declared, **dead_letter_roles}.items():
        assert "if (useChangeEvents)" in decl, name
    assert text(VARS["useChangeEvents"]) == "changeEvents == 'on'"
    param = next(
        text(n)
        for n in MAIN.root_node.named_children
        if n.type == "parameter_declaration" and text(n.named_children[0]) == "changeEvents"
    )
    assert param.endswith("= 'off'")
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["changeEvents"]["value"] == "${CHANGE_EVENTS}"


def test_the_apim_filter_is_exactly_what_the_rule_counts_as_a_change() -> None:
    subscribed = strings(VARS["apimChangeEventTypes"])
    assert len(subscribed) == len(set(subscribed)) >= 20
    for event_type in subscribed:
        result = classify(apim_event(event_type), [SERVICE], SERVICE_NOW)
        assert result.verdict is Verdict.CHANGE, (event_type, result.reason)
    for state in STATE_EVENTS:
        assert f"Microsoft.ApiManagement.{state}" not in subscribed
        result = classify(apim_event(f"Microsoft.ApiManagement.{state}"), [SERVICE], SERVICE_NOW)
        assert result.verdict is not Verdict.CHANGE


def test_the_resource_manager_filter_is_the_rules_types_without_the_products_own_actions():
    subscribed = {t.lower() for t in strings(VARS["armChangeEventTypes"])}
    assert subscribed == set(ARM_CHANGES) | {ARM_ACTION}
    own = object_properties(VARS["ownActionsFilter"])
    assert string_value(own["operatorType"]) == "StringNotEndsWith"
    assert string_value(own["key"]) == "data.operationName"
    assert tuple(strings(own["values"])) == OWN_ACTIONS
    subject = object_properties(VARS["serviceSubjectFilter"])
    assert string_value(subject["operatorType"]) == "StringBeginsWith"
    assert string_value(subject["key"]) == "subject"
    assert text(subject["values"]) == "apimIdsLower"
    # Event Grid takes 25 filter values in all: the subject filter only while they fit.
    assert re.fullmatch(
        r"length\(apimIdsLower\) <= (\d+) \? \[serviceSubjectFilter, ownActionsFilter\] "
        r": \[ownActionsFilter\]",
        text(VARS["armAdvancedFilters"]),
    )
    limit = int(re.findall(r"<= (\d+)", text(VARS["armAdvancedFilters"]))[0])
    assert limit + len(OWN_ACTIONS) <= 25


def test_events_go_to_the_function_the_app_defines() -> None:
    endpoint = text(VARS["configChangedFunctionId"])
    function = re.search(r"/functions/(\w+)'$", endpoint)
    assert function and "Microsoft.Web/sites/${functionAppName}" in endpoint
    source = (REPO / "function_app.py").read_text()
    assert f'@app.function_name("{function[1]}")\n@app.event_grid_trigger(' in source
    for name, decl in modules("change-subscription.bicep").items():
        assert "functionResourceId: configChangedFunctionId" in decl, name
        # Event Grid checks the function when the subscription is created; the roles
        # must exist before Event Grid may dead-letter with them.
        assert re.search(r"dependsOn: \[\s*changeDeadLetterRoles\w+\[i\]\s*functionApp\s*\]", decl)


def test_the_subscription_retries_and_dead_letters_with_the_topics_identity() -> None:
    module = parse(INFRA / "app" / "change-subscription.bicep")
    [(_decl, body)] = resource_declarations(
        module, "Microsoft.EventGrid/systemTopics/eventSubscriptions@"
    )
    props = object_properties(object_properties(body)["properties"])
    destination = object_properties(props["destination"])
    assert string_value(destination["endpointType"]) == "AzureFunction"
    assert string_value(props["eventDeliverySchema"]) == "EventGridSchema"
    retry = object_properties(props["retryPolicy"])
    assert int(text(retry["maxDeliveryAttempts"])) >= 10
    assert int(text(retry["eventTimeToLiveInMinutes"])) == 1440
    dead_letter = object_properties(props["deadLetterWithResourceIdentity"])
    identity = object_properties(dead_letter["identity"])
    assert string_value(identity["type"]) == "SystemAssigned"
    where = object_properties(dead_letter["deadLetterDestination"])
    assert string_value(where["endpointType"]) == "StorageBlob"
    for path in ("change-topic-apim.bicep", "change-topic-group.bicep"):
        [(_decl, topic)] = resource_declarations(
            parse(INFRA / "app" / path), "Microsoft.EventGrid/systemTopics@"
        )
        identity = object_properties(object_properties(topic)["identity"])
        assert string_value(identity["type"]) == "SystemAssigned", path


def test_each_topic_may_write_the_dead_letter_container_and_nothing_else() -> None:
    roles = {
        name: decl
        for name, decl in modules("container-roles.bicep").items()
        if "changeTopics" in decl
    }
    assert set(roles) == {"changeDeadLetterRolesApim", "changeDeadLetterRolesGroup"}
    for name, decl in roles.items():
        assert "roles.storageBlobDataContributor" in decl, name
        assert "containerName: changeDeadLetterContainer.?outputs.name" in decl, name
        assert re.search(r"principalId: changeTopics\w+\[i\]\.\?outputs\.principalId", decl)
    assert f"storageBlobDataContributor: '{BLOB_DATA_CONTRIBUTOR}'" in text(MAIN.root_node)
    dead_letter = string_value(VARS["deadLetterContainerName"])
    backups = re.findall(r"'([a-z0-9-]+)'", text(VARS["containerName"]))
    assert dead_letter and backups and dead_letter not in backups  # never the backups' container
    [(_decl, container)] = resource_declarations(
        parse(INFRA / "app" / "blob-container.bicep"),
        "Microsoft.Storage/storageAccounts/blobServices/containers@",
    )
    props = object_properties(object_properties(container)["properties"])
    assert string_value(props["publicAccess"]) == "None"
