"""function_app.py through the real Python runtime (``azure-functions-runtime``), as Azure runs it.

The runtime indexes the app the way the platform's worker does on start-up; the host's own
rules are then checked on what it sends the host (every %SETTING% resolves, every schedule
is a six-field NCRONTAB, no route and method served twice); and functions are invoked
through the runtime's invocation path against the local stack.

    .venv/bin/python -m pytest -s tests/runtime     (-s prints the indexed functions)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.worker import Indexed, InvocationFailed, Worker
from shared.rules.model import Status, Trigger
from shared.rules.ncrontab import parse as validate
from tests.infra import REPO, app_settings, string_value, walk
from tests.product import Product

# What the host must register: name -> (trigger, what the trigger says). A decorator
# removed, a route or method changed, or a schedule hard-coded shows up here.
EXPECTED = {
    "scheduled_backup": ("timerTrigger", "%BACKUP_SCHEDULE%"),
    "housekeeping": ("timerTrigger", "%HOUSEKEEPING_SCHEDULE%"),
    "standby_sync": ("timerTrigger", "%STANDBY_SCHEDULE%"),
    "start_backup": ("httpTrigger", "POST backups"),
    "list_backups": ("httpTrigger", "GET backups"),
    "get_backup": ("httpTrigger", "GET backups/{backupName}"),
    "get_operation": ("httpTrigger", "GET operations/{operationId}"),
    "start_restore": ("httpTrigger", "POST restores"),
    "prune": ("httpTrigger", "POST prune"),
    "health": ("httpTrigger", "GET health"),
    "config_changed": ("eventGridTrigger", "event"),
}
SETTING = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    started = Worker()
    started.start()
    try:
        yield started
    finally:
        started.stop()


def summary(function: Indexed) -> tuple[str, str]:
    trigger = function.trigger
    if trigger["type"] == "httpTrigger":
        return trigger["type"], f"{' '.join(trigger['methods'])} {trigger['route']}"
    if trigger["type"] == "eventGridTrigger":
        return trigger["type"], trigger["name"]
    return trigger["type"], trigger["schedule"]


# Indexing -------------------------------------------------------------------------------


def test_the_runtime_indexes_every_function(worker: Worker) -> None:
    print(f"\nazure-functions-runtime indexed {len(worker.functions)} functions:")
    for function in worker.functions.values():
        print(f"  {function.describe()}")
    assert {name: summary(f) for name, f in worker.functions.items()} == EXPECTED


def test_the_worker_reports_itself_to_the_host(worker: Worker) -> None:
    metadata = worker.init_response.worker_metadata
    assert metadata.runtime_name == "python"
    assert metadata.runtime_version == "3.13"
    assert metadata.worker_version  # the runtime's own version, pinned in requirements.txt


def test_every_http_function_needs_a_function_key(worker: Worker) -> None:
    levels = {
        name: f.trigger["authLevel"]
        for name, f in worker.functions.items()
        if f.trigger["type"] == "httpTrigger"
    }
    assert levels and set(levels.values()) == {"FUNCTION"}, levels


def test_http_functions_return_through_the_http_output(worker: Worker) -> None:
    for function in worker.functions.values():
        outputs = [b for b in function.bindings if b["direction"] == "OUT"]
        if function.trigger["type"] == "httpTrigger":
            assert outputs == [{"direction": "OUT", "type": "http", "name": "$return"}]
        else:
            assert outputs == [], f"{function.name} has an output binding"


# The host's rules on what the worker sent -------------------------------------------------


def binding_settings(worker: Worker) -> dict[str, set[str]]:
    """%SETTING% -> the functions whose bindings use it."""
    used: dict[str, set[str]] = {}
    for function in worker.functions.values():
        for binding in function.bindings:
            for value in binding.values():
                for name in SETTING.findall(value if isinstance(value, str) else ""):
                    used.setdefault(name, set()).add(function.name)
    return used


def test_every_binding_setting_resolves_locally_and_in_azure(worker: Worker) -> None:
    used = binding_settings(worker)
    sample = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    bicep = app_settings()
    for name, functions in used.items():
        assert str(sample.get(name, "")).strip(), (
            f"{name} (used by {sorted(functions)}) has no value in local.settings.sample.json: "
            "the host would refuse to load those functions"
        )
        assert name in bicep and not bicep[name].conditional, (
            f"{name} (used by {sorted(functions)}) is not always an app setting in the Bicep"
        )
    assert set(used) >= {"BACKUP_SCHEDULE", "HOUSEKEEPING_SCHEDULE", "STANDBY_SCHEDULE"}


def test_every_schedule_is_a_six_field_ncrontab(worker: Worker) -> None:
    sample = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    bicep = app_settings()
    checked = 0
    for function in worker.functions.values():
        schedule = function.trigger.get("schedule")
        if schedule is None:
            continue
        setting = SETTING.fullmatch(schedule)
        if setting is None:
            validate(schedule)  # a literal schedule in the decorator
            checked += 1
            continue
        name = setting[1]
        assert name in sample and name in bicep, f"{name} is not set (see the test above)"
        validate(sample[name])
        # The Bicep default (the literal in the expression), the value deployed when the
        # parameter is left empty.
        literals = [string_value(n) for n in walk(bicep[name].value)]
        for literal in filter(None, literals):
            validate(literal)
        checked += 1
    assert checked == 3


def test_no_route_and_method_is_served_twice(worker: Worker) -> None:
    served = Counter(
        (method, f.trigger["route"].strip("/").lower())
        for f in worker.functions.values()
        if f.trigger["type"] == "httpTrigger"
        for method in f.trigger["methods"]
    )
    assert served, "no HTTP function indexed"
    assert [key for key, count in served.items() if count > 1] == []


# Invocation through the runtime -----------------------------------------------------------


@pytest.mark.stack
def test_health_through_the_runtime(worker: Worker, product: Product) -> None:
    answer = worker.http("health", "GET", "health")
    body: dict[str, Any] = answer.json()
    # No backup yet, and the first is not late: every configured service is pending.
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert body["status"] == "Healthy"
    assert {s["rpo"] for s in body["services"]} == {"pending"}
    assert {s["service"] for s in body["services"]} == {"contoso-apim", "contoso-standby"}


@pytest.mark.stack
def test_start_backup_through_the_runtime(worker: Worker, product: Product) -> None:
    answer = worker.http(
        "start_backup", "POST", "backups", body=json.dumps({"service": "contoso-apim"}).encode()
    )
    body = answer.json()
    assert answer.status == 202, body
    assert answer.headers["Location"] == body["statusUrl"]
    assert body["statusUrl"].endswith(f"/api/operations/{body['operationId']}")
    assert int(answer.headers["Retry-After"]) > 0
    (row,) = product.runtime.ledger.records(service="contoso-apim")
    assert (row.backup_name, row.status, row.trigger) == (
        body["backupName"],
        Status.RUNNING,
        Trigger.HTTP,
    )
    assert product.arm_requests("POST", "/service/contoso-apim/backup")

    # Route parameters reach the function as the host passes them.
    name = body["backupName"]
    one = worker.http("get_backup", "GET", f"backups/{name}", route_params={"backupName": name})
    assert one.status == 200 and one.json()["backupName"] == name


@pytest.mark.stack
def test_a_refusal_through_the_runtime_is_an_arm_error(worker: Worker, product: Product) -> None:
    answer = worker.http("start_restore", "POST", "restores", body=b"[]")
    assert answer.status == 400
    assert answer.json()["error"]["code"] == "BadRequest"


@pytest.mark.stack
def test_scheduled_backup_through_the_runtime(worker: Worker, product: Product) -> None:
    worker.timer("scheduled_backup")
    rows = product.runtime.ledger.records()
    assert {(r.service, r.trigger, r.status) for r in rows} == {
        ("contoso-apim", Trigger.SCHEDULE, Status.RUNNING),
        ("contoso-standby", Trigger.SCHEDULE, Status.RUNNING),
    }
    assert len(product.arm_requests("POST", "/backup")) == 2

    # Housekeeping, fired as the host fires it, settles both once APIM has finished.
    product.stack.control.advance_clock(3600)
    worker.timer("housekeeping", past_due=True)
    assert {r.status for r in product.runtime.ledger.records()} == {Status.SUCCEEDED}


def event_grid_body(product: Product, event_id: str, **changes: Any) -> dict[str, Any]:
    """An APIUpdated event exactly as Event Grid delivers one element of its array (the
    documented example's shape and seven-digit fraction), for contoso-apim."""
    service_id = product.stack.service_id("contoso-apim")
    body = {
        "id": event_id,
        "topic": service_id,
        "subject": "/apis/orders-api;Rev=1",
        "data": {"resourceUri": f"{service_id}/apis/orders-api;Rev=1"},
        "eventType": "Microsoft.ApiManagement.APIUpdated",
        "dataVersion": "1",
        "metadataVersion": "1",
        "eventTime": product.clock.now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "3Z",
    }
    body.update(changes)
    return body


@pytest.mark.stack
def test_an_event_grid_event_through_the_runtime_is_a_pending_change(
    worker: Worker, product: Product
) -> None:
    worker.event_grid("config_changed", event_grid_body(product, "evt-1"))
    worker.event_grid("config_changed", event_grid_body(product, "evt-1"))  # redelivered

    pending = product.runtime.changes.get("contoso-apim")
    assert pending is not None and pending.count == 1
    assert pending.what() == ["apis/orders-api;Rev=1 updated"]
    assert pending.first is not None and abs(pending.first - product.clock.now).total_seconds() < 1


@pytest.mark.stack
@pytest.mark.parametrize(
    "changes",
    [
        {"data": "not an object"},
        {"eventType": None, "id": None},
        {"subject": "", "topic": "", "data": {}},
        {"eventType": "Microsoft.Storage.BlobCreated"},
    ],
)
def test_a_bad_event_through_the_runtime_is_a_logged_drop_not_a_failure(
    worker: Worker, product: Product, changes: dict[str, Any]
) -> None:
    worker.event_grid("config_changed", event_grid_body(product, "evt-bad", **changes))
    assert product.runtime.changes.get("contoso-apim") is None


@pytest.mark.stack
def test_an_unreadable_event_time_fails_in_the_librarys_decoder_before_the_function(
    worker: Worker, product: Product
) -> None:
    # azure.functions parses eventTime itself, before the function runs: such an event
    # fails the invocation, and Event Grid retries it by its policy, then dead-letters it.
    # Azure's system topics never send one; every other bad field is the function's
    # logged drop (above). docs/change-backups.md says so.
    with pytest.raises(InvocationFailed):
        worker.event_grid("config_changed", event_grid_body(product, "e", eventTime="soon"))
    assert product.runtime.changes.get("contoso-apim") is None
