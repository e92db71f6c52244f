"""Exact verdicts, reasons and values of shared.rules.changes: what the trigger logs and
records for each kind of event, to the character (mutation testing, docs/reliability.md)."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.rules.changes import (
    Change,
    Classification,
    GridEvent,
    Verdict,
    classify,
    event_key,
    parse_event,
)
from shared.rules.naming import ServiceId
from tests.rules.test_changes import CONTOSO, NOW, SERVICES, SUB, apim_event, arm_event

APIM_ID = "95015754-aa51-4eb6-98d9-9ee322b82ad7"
ARM_ID = "4db48cba-50a2-455a-93b4-de41a3b5b7f6"
ARM_TIME = datetime(2026, 12, 2, 8, 59, 4, 611735, tzinfo=UTC)
APIM_TIME = datetime(2026, 12, 2, 8, 58, 44, 904832, tzinfo=UTC)
WRITE = "Microsoft.ApiManagement/service/write"


def what(result: Classification) -> str:
    assert result.verdict is Verdict.CHANGE and result.change is not None, result
    return result.change.what


# --- event ids ---------------------------------------------------------------------------


def test_an_event_id_of_exactly_128_characters_is_kept_and_a_longer_one_hashed():
    assert event_key("e" * 128) == "e" * 128
    assert event_key("e" * 129) == "sha256:" + hashlib.sha256(b"e" * 129).hexdigest()


def test_an_event_id_with_a_lone_surrogate_is_hashed_with_the_surrogate_replaced():
    # JSON may carry one ("\ud800"); the hash must not raise on it.
    raw = json.loads('"a\\ud800"')
    assert event_key(raw) == "sha256:" + hashlib.sha256(b"a?").hexdigest()


# --- malformed events: the reason the trigger logs, and the id it can still name ---------


@pytest.mark.parametrize(
    ("body", "reason", "event_id"),
    [
        (None, "the event is not a JSON object", ""),
        ([{"id": "x"}], "the event is not a JSON object", ""),
        ({}, "'id' is missing or not a non-empty string", ""),
        ({**apim_event(), "id": 7}, "'id' is missing or not a non-empty string", ""),
        ({**apim_event(), "eventType": " "}, "'eventType' is missing or not a non-empty string", APIM_ID),
        ({**apim_event(), "eventTime": "yesterday"}, "'eventTime' is not an ISO 8601 time", APIM_ID),
        ({**apim_event(), "subject": 7}, "'subject' is not a string", APIM_ID),
        ({**apim_event(), "dataVersion": 2}, "'dataVersion' is not a string", APIM_ID),
        ({**apim_event(), "data": "not an object"}, "'data' is not a JSON object", APIM_ID),
        ({**apim_event(), "data": [1]}, "'data' is not a JSON object", APIM_ID),
        (
            {**apim_event(), "id": "i" * 200, "data": 1},
            "'data' is not a JSON object",
            "sha256:" + hashlib.sha256(b"i" * 200).hexdigest(),
        ),
        # Parsed, but nothing says which resource changed:
        ({**apim_event(), "data": {}, "subject": "", "topic": ""}, "no resource URI in the event", APIM_ID),
        # ...a relative subject without a topic to put it under is not a resource ID either.
        ({**apim_event(), "data": {}, "subject": "/apis/a", "topic": ""}, "no resource URI in the event", APIM_ID),
    ],
)  # fmt: skip
def test_a_malformed_event_gets_its_exact_reason_and_the_id_it_carries(
    body: Any, reason: str, event_id: str
):
    assert classify(body, SERVICES, NOW) == Classification(
        Verdict.MALFORMED, reason, event_id=event_id
    )


# --- parsing ---------------------------------------------------------------------------


def test_optional_fields_missing_are_empty_and_data_an_empty_object():
    body = {"id": " a ", "eventType": " T ", "eventTime": "2026-12-02T08:00:00Z"}
    expected = GridEvent("a", "", "", "T", datetime(2026, 12, 2, 8, tzinfo=UTC), {}, "")
    assert parse_event(body) == expected


def test_optional_fields_null_are_empty_and_data_an_empty_object():
    body = {
        "id": "a",
        "eventType": "T",
        "eventTime": "2026-12-02T08:00:00Z",
        "topic": None,
        "subject": None,
        "dataVersion": None,
        "data": None,
    }
    expected = GridEvent("a", "", "", "T", datetime(2026, 12, 2, 8, tzinfo=UTC), {}, "")
    assert parse_event(body) == expected


def test_every_field_is_read_and_stripped():
    body = apim_event(dataVersion=" 1 ", subject=" /apis/a ", topic=f" {CONTOSO.resource_id} ")
    assert parse_event(body) == GridEvent(
        id=APIM_ID,
        topic=CONTOSO.resource_id,
        subject="/apis/a",
        event_type="Microsoft.ApiManagement.APIUpdated",
        event_time=APIM_TIME,
        data={"resourceUri": CONTOSO.resource_id + "/apis/orders-api;Rev=1"},
        data_version="1",
    )


def test_an_event_time_with_an_offset_is_converted_to_utc():
    event = parse_event(apim_event(eventTime="2026-12-02T09:58:44.5+01:00"))
    assert event.event_time.isoformat() == "2026-12-02T08:58:44.500000+00:00"


def test_event_times_are_utc_whatever_the_process_time_zone(monkeypatch: pytest.MonkeyPatch):
    """The host may run with WEBSITE_TIME_ZONE / TZ set (issue 17): a naive eventTime is
    the provider's UTC, and an offset one is converted to UTC, not to local time."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        naive = parse_event(apim_event(eventTime="2026-12-02T08:00:00")).event_time
        offset = parse_event(apim_event(eventTime="2026-12-02T09:58:44+01:00")).event_time
        assert naive.isoformat() == "2026-12-02T08:00:00+00:00"
        assert offset.isoformat() == "2026-12-02T08:58:44+00:00"
    finally:
        monkeypatch.undo()
        time.tzset()


# --- verdicts other than a change: exact reason and event id ---------------------------


def test_another_event_type_is_foreign_with_its_type_named():
    body = {**apim_event(), "eventType": "Microsoft.Storage.BlobCreated"}
    assert classify(body, SERVICES, NOW) == Classification(
        Verdict.FOREIGN, "event type Microsoft.Storage.BlobCreated is not ours", event_id=APIM_ID
    )


def test_an_apim_event_type_that_is_only_a_verb_is_not_a_change():
    body = {**apim_event(), "eventType": "Microsoft.ApiManagement.Updated"}
    assert classify(body, SERVICES, NOW) == Classification(
        Verdict.NOT_A_CHANGE,
        "Microsoft.ApiManagement.Updated reports state, not configuration",
        event_id=APIM_ID,
    )


def test_a_resource_of_another_service_is_foreign_with_its_id_named():
    uri = CONTOSO.resource_id.replace("contoso-apim", "other") + "/apis/a"
    body = arm_event()
    body["data"]["resourceUri"] = uri
    assert classify(body, SERVICES, NOW) == Classification(
        Verdict.FOREIGN, f"{uri} is not a configured service", event_id=ARM_ID
    )


def test_an_action_without_an_operation_name_changes_no_configuration():
    body = arm_event(kind="ResourceActionSuccess")
    del body["data"]["operationName"]
    assert classify(body, SERVICES, NOW) == Classification(
        Verdict.NOT_A_CHANGE, "an action changes no configuration", event_id=ARM_ID
    )


def test_a_failed_operation_names_its_status():
    body = arm_event(status="Failed")
    assert classify(body, SERVICES, NOW) == Classification(
        Verdict.NOT_A_CHANGE, "the operation's status is Failed", event_id=ARM_ID
    )


def test_a_backup_action_is_the_products_own_with_the_operation_named():
    operation = "Microsoft.ApiManagement/service/backup/action"
    body = arm_event("", operation, "ResourceActionSuccess")
    assert classify(body, SERVICES, NOW) == Classification(
        Verdict.OWN, f"{operation} is a backup or restore, not a change", event_id=ARM_ID
    )


@pytest.mark.parametrize(
    ("path", "segment"),
    [
        ("/backup", "backup"),
        ("/Restore", "restore"),
        ("/operationresults/b3Bz", "operationresults"),
        ("/operationresults/1/status", "operationresults"),  # the first segment decides
    ],
)
def test_a_write_below_the_products_own_segments_is_its_own(path: str, segment: str):
    assert classify(arm_event(path, WRITE), SERVICES, NOW) == Classification(
        Verdict.OWN, f"{segment} is the product's own operation, not a change", event_id=ARM_ID
    )


@pytest.mark.parametrize(
    "path",
    [
        "/providers/Microsoft.Authorization/locks/no-delete",
        "/providers/Microsoft.Authorization/roleAssignments/0000",
        "/providers/Microsoft.Authorization",  # the namespace alone: two segments suffice
    ],
)
def test_an_extension_resource_outside_the_backup_names_its_namespace(path: str):
    body = arm_event(path, "Microsoft.Authorization/locks/write")
    assert classify(body, SERVICES, NOW) == Classification(
        Verdict.NOT_A_CHANGE,
        "Microsoft.Authorization resources on the service are not in a backup",
        event_id=ARM_ID,
    )


# --- changes: the exact record -----------------------------------------------------------


def test_a_write_of_the_service_itself_is_recorded_as_service_write():
    result = classify(arm_event("", WRITE), SERVICES, NOW)
    change = Change(ARM_ID, "contoso-apim", ARM_TIME, "service write")
    assert result == Classification(Verdict.CHANGE, "contoso-apim: service write", change, ARM_ID)


def test_the_resource_uri_is_read_first_and_its_trailing_slash_dropped():
    body = apim_event(
        subject="", topic="", data={"resourceUri": f" {CONTOSO.resource_id}/apis/ONYX/ "}
    )
    assert what(classify(body, SERVICES, NOW)) == "apis/ONYX updated"


def test_without_a_resource_uri_the_apim_topic_and_subject_are_joined():
    body = apim_event(path="/apis/ONYX/", data={})
    assert what(classify(body, SERVICES, NOW)) == "apis/ONYX updated"


def test_without_a_resource_uri_a_full_id_subject_is_the_resource():
    body = arm_event("/namedValues/ONYX/")
    del body["data"]["resourceUri"]
    assert what(classify(body, SERVICES, NOW)) == "namedValues/ONYX write"


def test_a_topic_with_a_trailing_slash_is_joined_with_the_subject():
    box = ServiceId.parse(
        f"/subscriptions/{SUB}/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/BOX"
    )
    body = apim_event(path="/apis/a", topic=box.resource_id + "/", data={})
    result = classify(body, [box], NOW)
    assert result.change == Change(APIM_ID, "box", APIM_TIME, "apis/a updated")
    assert result.reason == "BOX: apis/a updated"


def test_an_unprintable_character_in_what_changed_becomes_a_question_mark():
    body = apim_event(path="/apis/a\tb")
    assert what(classify(body, SERVICES, NOW)) == "apis/a?b updated"


def test_what_changed_of_exactly_160_characters_is_kept_whole():
    path = "/apis/" + "a" * 147  # "apis/" + 147 + " updated": 160
    assert what(classify(apim_event(path=path), SERVICES, NOW)) == path[1:] + " updated"


def test_what_changed_longer_than_160_characters_is_clipped_to_160_with_an_ellipsis():
    path = "/apis/" + "a" * 148  # 161 characters
    clipped = what(classify(apim_event(path=path), SERVICES, NOW))
    assert clipped == "apis/" + "a" * 148 + " upd..."
    assert len(clipped) == 160
