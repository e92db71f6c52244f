"""A service's child resources (APIs, products, named values...) through Resource Manager.

The emulator keeps a service's configuration as lists of items (``{"name": ..., ...}``)
per collection; these routes read and change them the way Resource Manager does:
``PUT`` creates or replaces (201 or 200), ``PATCH`` merges into an existing one (404 if
none), ``DELETE`` answers 200 when it removed something and 204 when there was nothing.
Each change is what a backup captures and a restore brings back.
"""

from __future__ import annotations

import copy
from typing import Any

from emulator.model import JSON, SERVICE_TYPE, EmulatorError, Service

# Collections the routes accept: the seed's own, and a few more a backup holds.
COLLECTIONS = frozenset(
    {
        "apis",
        "products",
        "namedValues",
        "users",
        "subscriptions",
        "backends",
        "policies",
        "certificates",
        "gateways",
        "groups",
        "loggers",
        "tags",
    }
)


def collection_name(raw: str) -> str:
    """The collection's canonical spelling (ARM matches segment names case-insensitively)."""
    for name in COLLECTIONS:
        if name.lower() == raw.lower():
            return name
    raise EmulatorError(404, "NotFound", f"The emulator has no collection '{raw}'.")


def to_arm(service: Service, collection: str, item: JSON) -> JSON:
    properties = {k: copy.deepcopy(v) for k, v in item.items() if k != "name"}
    return {
        "id": f"{service.resource_id}/{collection}/{item['name']}",
        "type": f"{SERVICE_TYPE}/{collection}",
        "name": item["name"],
        "properties": properties,
    }


def _items(service: Service, collection: str) -> list[JSON]:
    items = service.configuration.setdefault(collection, [])
    if not isinstance(items, list):
        raise EmulatorError(500, "InternalServerError", f"configuration.{collection} is no list")
    return items


def _find(items: list[JSON], name: str) -> int | None:
    for index, item in enumerate(items):
        if str(item.get("name", "")).lower() == name.lower():
            return index
    return None


def _properties(body: Any) -> JSON:
    if body is None:
        return {}
    if not isinstance(body, dict) or not isinstance(body.get("properties", {}), dict):
        raise EmulatorError(
            400, "InvalidRequestContent", "The body must be an object with 'properties'."
        )
    return copy.deepcopy(body.get("properties", {}))


def get_child(service: Service, collection: str, name: str) -> JSON:
    items = _items(service, collection)
    index = _find(items, name)
    if index is None:
        raise EmulatorError(404, "ResourceNotFound", f"'{collection}/{name}' was not found.")
    return to_arm(service, collection, items[index])


def put_child(service: Service, collection: str, name: str, body: Any) -> tuple[JSON, bool]:
    """Create or replace; the resource, and whether it was created."""
    items = _items(service, collection)
    item = {"name": name, **_properties(body)}
    index = _find(items, name)
    if index is None:
        items.append(item)
    else:
        item["name"] = items[index]["name"]  # the name keeps its first spelling
        items[index] = item
    return to_arm(service, collection, item), index is None


def patch_child(service: Service, collection: str, name: str, body: Any) -> JSON:
    items = _items(service, collection)
    index = _find(items, name)
    if index is None:
        raise EmulatorError(404, "ResourceNotFound", f"'{collection}/{name}' was not found.")
    items[index].update(_properties(body))
    return to_arm(service, collection, items[index])


def delete_child(service: Service, collection: str, name: str) -> bool:
    """Remove it; whether there was one."""
    items = _items(service, collection)
    index = _find(items, name)
    if index is None:
        return False
    del items[index]
    return True
