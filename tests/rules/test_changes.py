"""Which Event Grid events are configuration changes (shared.rules.changes), with events
shaped as APIM's and Resource Manager's system topics publish them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.rules.changes import Verdict, classify, event_key, parse_event
from shared.rules.naming import ServiceId

SUB = "00000000-0000-0000-0000-000000000001"
CONTOSO = ServiceId.parse(
    f"/subscriptions/{SUB}/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/contoso-apim"
)
FABRIKAM = ServiceId.parse(
    f"/subscriptions/{SUB}/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/fabrikam-apim"
)
SERVICES = (CONTOSO, FABRIKAM)
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def apim_event(kind: str = "APIUpdated", path: str = "/apis/orders-api;Rev=1", **extra: Any):
    return {
        "id": "95015754-aa51-4eb6-98d9-9ee322b82ad7",
        "topic": CONTOSO.resource_id,
        "subject": path,
        "data": {"resourceUri": CONTOSO.resource_id + path},
        "eventType": f"Microsoft.ApiManagement.{kind}",
        "dataVersion": "1",
        "metadataVersion": "1",
        "eventTime": "2026-12-02T08:58:44.9048323Z",
        **extra,
    }


def arm_event(
    path: str = "/namedValues/backend-host",
    operation: str = "Microsoft.ApiManagement/service/namedValues/write",
    kind: str = "ResourceWriteSuccess",
    status: str = "Succeeded",
    service: ServiceId = CONTOSO,
):
    # Resource Manager writes the resource group segment in lower case.
    uri = service.resource_id.replace("resourceGroups", "resourcegroups") + path
    return {
        "id": "4db48cba-50a2-455a-93b4-de41a3b5b7f6",
        "topic": f"/subscriptions/{SUB}/resourceGroups/rg-apim",
        "subject": uri,
        "eventType": f"Microsoft.Resources.{kind}",
        "eventTime": "2026-12-02T08:59:04.6117357Z",
        "data": {
            "authorization": {"scope": uri, "action": operation, "evidence": {"role": "Owner"}},
            "claims": {"appid": "some-app"},
            "correlationId": "8a2da39d-ef93-42dd-8ce6-97ac802ecc6d",
            "resourceProvider": "Microsoft.ApiManagement",
            "resourceUri": uri,
            "operationName": operation,
            "status": status,
            "subscriptionId": SUB,
            "tenantId": "72f988bf-0000-0000-0000-000000000000",
        },
        "dataVersion": "2",
        "metadataVersion": "1",
    }


def verdict(body: Any) -> Verdict:
    return classify(body, SERVICES, NOW).verdict


def test_an_apim_api_update_is_a_change_of_its_service():
    result = classify(apim_event(), SERVICES, NOW)

    assert result.verdict is Verdict.CHANGE
    assert result.change is not None
    assert result.change.service == "contoso-apim"
    assert result.change.what == "apis/orders-api;Rev=1 updated"
    assert result.change.at == datetime(2026, 12, 2, 8, 58, 44, 904832, tzinfo=UTC)
    assert result.change.event_id == "95015754-aa51-4eb6-98d9-9ee322b82ad7"


@pytest.mark.parametrize(
    "kind",
    [
        "UserCreated", "UserDeleted", "APICreated", "APIDeleted", "ProductUpdated",
        "ReleaseCreated", "APIReleaseUpdated", "SubscriptionDeleted", "GatewayCreated",
        "GatewayAPIAdded", "GatewayAPIRemoved", "GatewayCertificateAuthorityUpdated",
        "GatewayHostnameConfigurationCreated",
    ],
)  # fmt: skip
def test_every_apim_configuration_event_is_a_change(kind: str):
    assert verdict(apim_event(kind)) is Verdict.CHANGE


@pytest.mark.parametrize(
    "kind",
    [
        "GatewayTokenNearExpiry",
        "GatewayTokenExpired",
        "CircuitBreaker.Opened",
        "CircuitBreaker.Closed",
    ],
)
def test_apim_state_events_are_not_changes(kind: str):
    assert verdict(apim_event(kind)) is Verdict.NOT_A_CHANGE


def test_the_older_upper_case_apim_prefix_is_read_too():
    body = apim_event()
    body["eventType"] = "Microsoft.APIManagement.ProductCreated"
    assert verdict(body) is Verdict.CHANGE


def test_an_apim_event_without_resource_uri_falls_back_to_topic_and_subject():
    body = apim_event(path="/products/starter")
    body["data"] = {}
    result = classify(body, SERVICES, NOW)
    assert result.change is not None and result.change.what == "products/starter updated"


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/namedValues/backend-host", "Microsoft.ApiManagement/service/namedValues/write"),
        ("/apis/orders-api/policies/policy", "Microsoft.ApiManagement/service/apis/policies/write"),
        ("/backends/orders", "Microsoft.ApiManagement/service/backends/write"),
        ("/certificates/client", "Microsoft.ApiManagement/service/certificates/write"),
        ("", "Microsoft.ApiManagement/service/write"),
    ],
)
def test_resource_manager_writes_of_the_service_and_its_children_are_changes(
    path: str, operation: str
):
    result = classify(arm_event(path, operation), SERVICES, NOW)
    assert result.verdict is Verdict.CHANGE
    assert result.change is not None and result.change.service == "contoso-apim"
    assert result.change.what.endswith(" write")


def test_a_delete_is_a_change():
    body = arm_event(
        "/namedValues/old",
        "Microsoft.ApiManagement/service/namedValues/delete",
        "ResourceDeleteSuccess",
    )
    result = classify(body, SERVICES, NOW)
    assert result.change is not None and result.change.what == "namedValues/old delete"


@pytest.mark.parametrize(
    ("kind", "path", "operation"),
    [
        ("ResourceActionSuccess", "", "Microsoft.ApiManagement/service/backup/action"),
        ("ResourceActionSuccess", "", "Microsoft.ApiManagement/service/restore/action"),
        ("ResourceWriteSuccess", "/backup", "Microsoft.ApiManagement/service/backup/action"),
        ("ResourceWriteSuccess", "/backup", "Microsoft.ApiManagement/service/write"),
        ("ResourceWriteSuccess", "/restore", "Microsoft.ApiManagement/service/write"),
        ("ResourceWriteSuccess", "/operationresults/b3Bz", "Microsoft.ApiManagement/service/write"),
    ],
)
def test_the_products_own_backups_and_restores_are_not_changes(
    kind: str, path: str, operation: str
):
    assert verdict(arm_event(path, operation, kind)) is Verdict.OWN


@pytest.mark.parametrize(
    ("kind", "operation", "status"),
    [
        ("ResourceActionSuccess", "Microsoft.ApiManagement/service/namedValues/listValue/action", "Succeeded"),
        ("ResourceActionSuccess", "Microsoft.ApiManagement/service/subscriptions/listSecrets/action", "Succeeded"),
        ("ResourceWriteSuccess", "Microsoft.ApiManagement/service/read", "Succeeded"),
        ("ResourceWriteFailure", "Microsoft.ApiManagement/service/namedValues/write", "Failed"),
        ("ResourceWriteCancel", "Microsoft.ApiManagement/service/namedValues/write", "Canceled"),
        ("ResourceWriteSuccess", "Microsoft.ApiManagement/service/namedValues/write", "Failed"),
    ],
)  # fmt: skip
def test_reads_and_failed_writes_are_not_changes(kind: str, operation: str, status: str):
    assert verdict(arm_event(operation=operation, kind=kind, status=status)) is Verdict.NOT_A_CHANGE


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/providers/Microsoft.Insights/diagnosticSettings/to-law", Verdict.CHANGE),
        ("/providers/Microsoft.Authorization/roleAssignments/0000", Verdict.NOT_A_CHANGE),
        ("/providers/Microsoft.Authorization/locks/no-delete", Verdict.NOT_A_CHANGE),
        ("/providers/Microsoft.Resources/tags/default", Verdict.NOT_A_CHANGE),
    ],
)
def test_extension_resources_count_only_when_the_manifest_keeps_them(path: str, expected: Verdict):
    assert verdict(arm_event(path, "Microsoft.Whatever/write")) is expected


def test_a_key_regeneration_is_a_change():
    operation = "Microsoft.ApiManagement/service/subscriptions/regeneratePrimaryKey/action"
    body = arm_event("/subscriptions/alice", operation, "ResourceActionSuccess")
    assert verdict(body) is Verdict.CHANGE


@pytest.mark.parametrize(
    "uri",
    [
        f"/subscriptions/{SUB}/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/contoso-apim2",
        f"/subscriptions/{SUB}/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/other/apis/a",
        f"/subscriptions/{SUB}/resourceGroups/rg-apim/providers/Microsoft.Storage/storageAccounts/backups",
        f"/subscriptions/{SUB}/resourceGroups/other-rg/providers/Microsoft.ApiManagement/service/contoso-apim",
    ],
)
def test_other_resources_and_services_are_foreign(uri: str):
    body = arm_event()
    body["data"]["resourceUri"] = body["subject"] = uri
    assert verdict(body) is Verdict.FOREIGN


def test_the_service_prefix_is_matched_without_regard_to_case():
    body = arm_event()
    body["data"]["resourceUri"] = body["data"]["resourceUri"].upper()
    result = classify(body, SERVICES, NOW)
    assert result.change is not None and result.change.service == "contoso-apim"


def test_other_event_types_are_foreign():
    body = apim_event()
    body["eventType"] = "Microsoft.Storage.BlobCreated"
    assert verdict(body) is Verdict.FOREIGN


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "text",
        {},
        {"id": "x", "eventType": "Microsoft.ApiManagement.APIUpdated"},
        {**apim_event(), "eventTime": "yesterday"},
        {**apim_event(), "eventTime": 5},
        {**apim_event(), "id": ""},
        {**apim_event(), "data": "not an object"},
        {**apim_event(), "subject": 7},
        {**apim_event(), "data": {}, "subject": "", "topic": ""},
    ],
)
def test_malformed_events_get_a_verdict_and_a_reason_not_an_exception(body: Any):
    result = classify(body, SERVICES, NOW)
    assert result.verdict is Verdict.MALFORMED
    assert result.reason


def test_a_change_in_the_future_is_dated_when_it_was_received():
    body = apim_event(eventTime="2030-01-01T00:00:00Z")
    result = classify(body, SERVICES, NOW)
    assert result.change is not None and result.change.at == NOW


def test_a_naive_event_time_is_read_as_utc():
    assert parse_event(apim_event(eventTime="2026-12-02T08:00:00")).event_time == datetime(
        2026, 12, 2, 8, tzinfo=UTC
    )


def test_long_or_unprintable_event_ids_are_kept_as_a_hash():
    assert event_key("abc") == "abc"
    long_id = "x" * 500
    assert event_key(long_id).startswith("sha256:") and len(event_key(long_id)) < 80
    assert event_key("a\nb").startswith("sha256:")


def test_what_changed_is_clipped_and_printable():
    body = apim_event(path="/apis/" + "a" * 400 + "\x00")
    result = classify(body, SERVICES, NOW)
    assert result.change is not None
    assert len(result.change.what) <= 160 and result.change.what.isprintable()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


@given(body=_json)
def test_classify_never_raises_on_any_json(body: Any):
    result = classify(body, SERVICES, NOW)
    assert result.reason or result.verdict is Verdict.CHANGE
    json.dumps(result.reason)


@given(
    field=st.sampled_from(
        ["id", "topic", "subject", "eventType", "eventTime", "data", "dataVersion"]
    ),
    value=_json,
)
def test_classify_never_raises_whatever_one_field_holds(field: str, value: Any):
    body = {**apim_event(), field: value}
    classify(body, SERVICES, NOW)
    classify({**arm_event(), field: value}, SERVICES, NOW - timedelta(days=1))
