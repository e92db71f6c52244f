"""The HTTP plumbing's input rules, without any server: bodies, depth, query values."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.api.http import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    bool_value,
    error_response,
    handle,
    json_object,
    nesting_exceeds,
    read_json,
    string_field,
)
from shared.rules import errors


def request(body: bytes, **params: str) -> func.HttpRequest:
    return func.HttpRequest("POST", "https://h.example/api/x", params=params, body=body)


def refused(body: bytes, **kwargs: object) -> str:
    with pytest.raises(errors.BadRequest) as caught:
        read_json(request(body), **kwargs)  # type: ignore[arg-type]
    return caught.value.message


def test_a_body_nested_ten_thousand_deep_is_a_400_not_a_recursion_error():
    # The reported case: ~10,000 levels, well under the 64 KiB cap.
    for raw in (b"[" * 10_000 + b"]" * 10_000, b'{"a":' * 9_000 + b"1" + b"}" * 9_000):
        assert len(raw) < MAX_BODY_BYTES
        assert "nests deeper than 32" in refused(raw)


def test_the_depth_rule_holds_at_the_limit_and_ignores_brackets_in_strings():
    at_limit = "[" * (MAX_JSON_DEPTH - 1) + "{}" + "]" * (MAX_JSON_DEPTH - 1)
    assert not nesting_exceeds(at_limit, MAX_JSON_DEPTH)
    assert nesting_exceeds("[" + at_limit + "]", MAX_JSON_DEPTH)
    in_string = json.dumps({"service": "[{" * 5000 + '\\"[' * 100})
    assert not nesting_exceeds(in_string, MAX_JSON_DEPTH)
    # An escaped quote does not end the string: the brackets after it are still inside.
    assert not nesting_exceeds('{"a": "\\"' + "[" * 100 + '"}', MAX_JSON_DEPTH)


def test_the_answer_does_not_depend_on_the_recursion_limit():
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        assert "nests deeper" in refused(b"[" * 150 + b"]" * 150)
    finally:
        sys.setrecursionlimit(previous)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\xff\xfe{\x00}\x00", "not valid UTF-8"),
        (b'{"service": "\xc3\x28"}', "not valid UTF-8 (byte 13)"),
        ('{"service": "x"}'.encode("utf-16"), "not valid UTF-8"),
        (b"{not json", "not valid JSON"),
        (b'{"dryRun": NaN}', "not valid JSON"),
        (b'{"a": Infinity}', "not valid JSON"),
        (b'{"a": 1, "a": 2}', "repeats the key 'a'"),
        (b"[]", "must be a JSON object"),
        (b'"service"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"1" * 5000, "not valid JSON"),  # past Python's int digit limit: a ValueError
        (b" " * (MAX_BODY_BYTES + 1), "larger than 65536 bytes"),
        (b"", "A JSON body is required"),
        (b" \r\n\t", "A JSON body is required"),
    ],
)
def test_malformed_bodies_are_refused_with_the_reason(raw: bytes, expected: str):
    assert expected in refused(raw)


def test_a_bom_is_tolerated_and_an_empty_optional_body_is_an_empty_object():
    assert read_json(request(b'\xef\xbb\xbf{"service": "a"}')) == {"service": "a"}
    assert read_json(request(b""), optional=True) == {}


def test_unknown_fields_are_refused_by_name_when_the_route_lists_its_fields():
    message = refused(b'{"service": "a", "dryrun": true}', fields=("service",))
    assert "'dryrun'" in message and "expected: service" in message
    assert "expected: none" in refused(b'{"dryRun": true}', optional=True, fields=())
    assert read_json(request(b'{"service": "a"}'), fields=("service",)) == {"service": "a"}


def test_string_fields_are_bounded_and_free_of_control_characters():
    with pytest.raises(errors.BadRequest, match="longer than 250") as caught:
        string_field({"service": "a" * 251}, "service", required=False, max_length=250)
    assert caught.value.target == "service"
    for value in ("a\x00b", "a\nb", "a\u0085b", "a\ud800b"):
        with pytest.raises(errors.BadRequest, match="control or invalid characters"):
            string_field({"service": value}, "service", required=False)
    wrong: tuple[object, ...] = (1, True, [], {}, " ")
    for item in wrong:
        with pytest.raises(errors.BadRequest, match="non-empty string"):
            string_field({"service": item}, "service", required=False)
    assert string_field({"service": " contoso "}, "service", required=False) == "contoso"


def test_booleans_refuse_everything_but_true_false_1_0():
    assert bool_value(" TRUE ", "dryRun") is True
    assert bool_value("0", "dryRun") is False
    assert bool_value(None, "dryRun") is False
    for value in ("", " ", "yes", "truee", "x" * 10_000):
        with pytest.raises(errors.BadRequest, match="'dryRun' must be true or false"):
            bool_value(value, "dryRun")


def test_dependency_unavailable_is_a_503_naming_the_dependency_with_retry_after():
    response = error_response(errors.DependencyUnavailable("storage", "ServiceRequestError"))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert json.loads(response.get_body()) == {
        "error": {
            "code": "DependencyUnavailable",
            "message": "storage cannot be reached: ServiceRequestError",
            "target": "storage",
        }
    }


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.binary(max_size=2048))
def test_any_bytes_are_an_object_or_a_bad_request(raw: bytes):
    outcome: object
    try:
        outcome = read_json(request(raw), optional=True)
    except errors.BadRequest as exc:
        outcome = exc.message
    assert isinstance(outcome, dict) or (isinstance(outcome, str) and outcome)


def raised_in(module: str, exc: Exception) -> Callable[[], func.HttpResponse]:
    """An action that fails with ``exc`` from inside a frame of ``module`` (as an SDK's
    own code would), for handle() to classify by the frames the exception went through."""
    namespace: dict[str, Any] = {"__name__": module, "exc": exc}
    exec("def call():\n    raise exc\n", namespace)  # noqa: S102 - a fixed, local snippet
    action: Callable[[], func.HttpResponse] = namespace["call"]
    return action


@pytest.mark.parametrize(
    ("module", "exc", "target", "cause"),
    [
        (
            "azure.data.tables._table_client",
            ServiceRequestError("refused"),
            "storage",
            "ServiceRequestError",
        ),
        (
            "azure.storage.blob._blob_client",
            ServiceResponseError("reset"),
            "storage",
            "ServiceResponseError",
        ),
        (
            "azure.mgmt.apimanagement.operations",
            ServiceRequestError("refused"),
            "resourceManager",
            "ServiceRequestError",
        ),
        (
            "azure.data.tables._table_client",
            ClientAuthenticationError("no token"),
            "storage",
            "ClientAuthenticationError",
        ),
    ],
)
def test_an_unreachable_dependency_is_a_503_naming_it(module, exc, target, cause):
    response = handle(raised_in(module, exc))
    assert response.status_code == 503
    error = json.loads(response.get_body())["error"]
    assert error["code"] == "DependencyUnavailable"
    assert error["target"] == target
    assert error["message"].endswith(f"cannot be reached: {cause}")


def answered(status: int) -> HttpResponseError:
    exc = HttpResponseError(f"HTTP {status}")
    exc.status_code = status
    return exc


@pytest.mark.parametrize("status", [401, 403, 408, 429, 500, 503])
def test_storage_refusing_our_identity_or_failing_is_a_503_naming_storage(status: int):
    # A 403 from Table Storage is a plain HttpResponseError (AuthorizationFailure from its
    # firewall, AuthorizationPermissionMismatch for a missing data role): not our bug.
    response = handle(raised_in("azure.data.tables._table_client", answered(status)))
    assert response.status_code == 503, response.get_body()
    error = json.loads(response.get_body())["error"]
    assert error == {
        "code": "DependencyUnavailable",
        "message": f"storage cannot be reached: HttpResponseError (HTTP {status})",
        "target": "storage",
    }


@pytest.mark.parametrize("status", [400, 404, 409, 412, 413])
def test_a_storage_answer_to_a_request_of_ours_stays_a_500(status: int):
    response = handle(raised_in("azure.data.tables._table_client", answered(status)))
    assert response.status_code == 500
    assert json.loads(response.get_body())["error"]["code"] == "InternalError"


def test_a_storage_refusal_that_is_our_bug_stays_a_500():
    # A 400 from storage (a query it will not run) is not an outage: it must stay visible.
    response = handle(raised_in("azure.data.tables._models", HttpResponseError("bad filter")))
    assert response.status_code == 500
    assert json.loads(response.get_body())["error"]["code"] == "InternalError"
    # An SDK error from an unknown place is not blamed on a dependency either.
    assert handle(raised_in("somewhere.else", ServiceRequestError("x"))).status_code == 500


def test_the_same_rules_serve_a_json_header_with_its_own_name():
    # e.g. a decoded X-MS-CLIENT-PRINCIPAL: the message names what was wrong.
    with pytest.raises(errors.BadRequest, match="The principal nests deeper than 32 levels"):
        json_object(b"[" * 100 + b"]" * 100, "The principal")
    assert json_object(b'{"roles": ["a"]}', "The principal") == {"roles": ["a"]}


def test_a_restore_target_longer_than_a_resource_id_is_a_400_naming_it():
    from shared.jobs.restores import RestoreRequest
    from shared.rules import errors

    name = "contoso-apim-20261127T020000Z.apimbackup"
    with pytest.raises(errors.BadRequest) as caught:
        RestoreRequest.from_body({"backupName": name, "targetService": "x" * 251})
    assert "'targetService'" in caught.value.message
    assert RestoreRequest.from_body({"backupName": name, "targetService": "y" * 250}).target_service
