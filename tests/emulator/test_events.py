"""The emulator's Event Grid events: a change through Resource Manager (the real SDK)
publishes what Azure's system topics would, delivered to a webhook, and the product's
rules read them as changes, or as its own backups."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest
from azure.mgmt.apimanagement.models import NamedValueCreateContract, ProductContract

from devstack.loopback import LoopbackServer
from devstack.stack import LocalStack
from shared.rules.changes import Verdict, classify
from shared.rules.naming import ServiceId
from tests.emulator import RG, make_client, params

pytestmark = pytest.mark.stack


class Subscriber(BaseHTTPRequestHandler):
    """A webhook: keeps what Event Grid would deliver; answers ``status``."""

    received: ClassVar[list[tuple[str | None, Any]]] = []
    status: ClassVar[int] = 200
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        with self.lock:
            self.received.append((self.headers.get("aeg-event-type"), body))
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def subscriber(emulator: LocalStack) -> Iterator[LoopbackServer]:
    Subscriber.received = []
    Subscriber.status = 200
    server = LoopbackServer(Subscriber)
    server.start()
    emulator.control.subscribe_events(f"{server.url}/runtime/webhooks/eventgrid?code=secret")
    try:
        yield server
    finally:
        emulator.control.subscribe_events(None)
        server.stop()


def services(stack: LocalStack) -> list[ServiceId]:
    return [ServiceId.parse(stack.service_id(n)) for n in ("contoso-apim", "fabrikam-apim")]


def delivered(stack: LocalStack) -> list[dict[str, Any]]:
    stack.control.drain_events()
    events = []
    for kind, body in Subscriber.received:
        assert kind == "Notification"
        assert isinstance(body, list)
        events.extend(body)
    return events


def verdicts(stack: LocalStack, events: list[dict[str, Any]]) -> list[Verdict]:
    now = datetime.now(UTC)
    return [classify(e, services(stack), now).verdict for e in events]


def test_a_named_value_write_publishes_a_resource_manager_write_only(
    emulator: LocalStack, subscriber: LoopbackServer
):
    client = make_client(emulator)
    contract = NamedValueCreateContract(display_name="region", value="westeurope")
    client.named_value.begin_create_or_update(RG, "contoso-apim", "region", contract).result()

    events = delivered(emulator)
    assert [e["eventType"] for e in events] == ["Microsoft.Resources.ResourceWriteSuccess"]
    data = events[0]["data"]
    assert data["operationName"] == "Microsoft.ApiManagement/service/namedValues/write"
    assert (
        data["resourceUri"].lower()
        == (emulator.service_id("contoso-apim") + "/namedValues/region").lower()
    )
    assert "/resourcegroups/" in data["resourceUri"]  # as Resource Manager spells it
    assert verdicts(emulator, events) == [Verdict.CHANGE]
    named = emulator.control.service_config("contoso-apim")["namedValues"]
    assert {"name": "region", "displayName": "region", "value": "westeurope"} in named


def test_a_product_is_created_updated_and_deleted_with_apims_own_events_too(
    emulator: LocalStack, subscriber: LoopbackServer
):
    client = make_client(emulator)
    product = ProductContract(display_name="Gold", state="published")
    client.product.create_or_update(RG, "contoso-apim", "gold", product)
    client.product.create_or_update(RG, "contoso-apim", "gold", product)
    client.product.delete(RG, "contoso-apim", "gold", if_match="*")
    client.product.delete(RG, "contoso-apim", "gold", if_match="*")  # gone: 204, no event

    events = delivered(emulator)
    assert [e["eventType"] for e in events] == [
        "Microsoft.ApiManagement.ProductCreated",
        "Microsoft.Resources.ResourceWriteSuccess",
        "Microsoft.ApiManagement.ProductUpdated",
        "Microsoft.Resources.ResourceWriteSuccess",
        "Microsoft.ApiManagement.ProductDeleted",
        "Microsoft.Resources.ResourceDeleteSuccess",
    ]
    assert events[0]["topic"] == emulator.service_id("contoso-apim")
    assert events[0]["subject"] == "/products/gold"
    assert len({e["id"] for e in events}) == len(events)
    assert set(verdicts(emulator, events)) == {Verdict.CHANGE}
    assert all(
        p["name"] != "gold" for p in emulator.control.service_config("contoso-apim")["products"]
    )


def test_the_products_own_backup_publishes_an_action_the_rules_ignore(
    emulator: LocalStack, subscriber: LoopbackServer
):
    client = make_client(emulator)
    name = f"contoso-apim-{uuid.uuid4().hex[:8]}.apimbackup"
    client.api_management_service.begin_backup(RG, "contoso-apim", params(name)).result()

    events = delivered(emulator)
    assert [e["eventType"] for e in events] == ["Microsoft.Resources.ResourceActionSuccess"]
    assert events[0]["data"]["operationName"] == "Microsoft.ApiManagement/service/backup/action"
    assert verdicts(emulator, events) == [Verdict.OWN]


def test_other_services_events_are_foreign_to_the_rules(
    emulator: LocalStack, subscriber: LoopbackServer
):
    client = make_client(emulator)
    contract = NamedValueCreateContract(display_name="x", value="y")
    client.named_value.begin_create_or_update(RG, "contoso-standby", "x", contract).result()

    assert verdicts(emulator, delivered(emulator)) == [Verdict.FOREIGN]


def test_events_are_kept_without_a_subscriber_and_a_failing_one_is_retried(
    emulator: LocalStack, subscriber: LoopbackServer
):
    client = make_client(emulator)
    emulator.control.subscribe_events(None)
    client.product.create_or_update(RG, "contoso-apim", "p1", ProductContract(display_name="P1"))
    assert {e["state"] for e in emulator.control.events()} == {"unsubscribed"}

    Subscriber.status = 500
    emulator.control.clear_events()
    emulator.control.subscribe_events(f"{subscriber.url}/hook")
    client.product.create_or_update(RG, "contoso-apim", "p2", ProductContract(display_name="P2"))
    emulator.control.drain_events()

    kept = emulator.control.events()
    assert {e["state"] for e in kept} == {"failed"}
    assert {e["attempts"] for e in kept} == {3} and kept[0]["error"] == "HTTP 500"


def test_the_subscriber_url_is_shown_without_its_key_and_a_reset_forgets_it(
    emulator: LocalStack, subscriber: LoopbackServer
):
    shown = emulator.control.subscribe_events(f"{subscriber.url}/hook?code=very-secret")
    assert "very-secret" not in json.dumps(shown)

    emulator.control.reset()

    assert emulator.control.subscribe_events(None)["url"] is None
    assert emulator.control.events() == []


def test_a_child_resource_reads_back_and_a_patch_needs_it_to_exist(emulator: LocalStack):
    client = make_client(emulator)
    client.product.create_or_update(RG, "contoso-apim", "p", ProductContract(display_name="P"))

    assert client.product.get(RG, "contoso-apim", "p").display_name == "P"
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError):
        client.product.get(RG, "contoso-apim", "absent")
