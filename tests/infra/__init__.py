"""Offline checks of infra/ (Bicep cannot be compiled here; tree-sitter-bicep parses it)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser, Tree

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"

_PARSER = Parser(Language(tree_sitter_bicep.language()))


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def parse(path: Path) -> Tree:
    return _PARSER.parse(path.read_bytes())


def text(node: Node) -> str:
    return (node.text or b"").decode()


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def error_nodes(tree: Tree) -> list[Node]:
    return [n for n in walk(tree.root_node) if n.is_error or n.is_missing]


def string_value(node: Node) -> str | None:
    """The value of a string literal without interpolation, else None."""
    if node.type != "string":
        return None
    if any(c.type == "interpolation" for c in node.named_children):
        return None
    raw = text(node)
    if raw.startswith("'''"):
        return raw[3:-3]
    return raw[1:-1].replace("\\'", "'").replace("\\\\", "\\")


def property_key(prop: Node) -> str:
    key = prop.named_children[0]
    value = string_value(key)
    return value if value is not None else text(key)


def object_properties(obj: Node) -> dict[str, Node]:
    """Key -> value node of an object literal's own properties."""
    return {
        property_key(p): p.named_children[-1]
        for p in obj.named_children
        if p.type == "object_property"
    }


def variables(tree: Tree) -> dict[str, Node]:
    """Variable name -> value node, for the file's top-level `var` declarations."""
    found: dict[str, Node] = {}
    for decl in tree.root_node.named_children:
        if decl.type == "variable_declaration":
            found[text(decl.named_children[0])] = decl.named_children[-1]
    return found


def resource_declarations(tree: Tree, type_prefix: str) -> list[tuple[Node, Node]]:
    """(declaration, body object) of every resource whose type starts with type_prefix."""
    found: list[tuple[Node, Node]] = []
    for decl in walk(tree.root_node):
        if decl.type != "resource_declaration":
            continue
        type_node = next(c for c in decl.named_children if c.type == "string")
        if not (string_value(type_node) or "").startswith(type_prefix):
            continue
        body = decl.named_children[-1]
        while body.type in ("if_statement", "for_statement"):
            body = body.named_children[-1]
        found.append((decl, body))
    return found


@dataclass(frozen=True)
class Setting:
    value: Node
    conditional: bool  # only present in one branch of a condition
    file: Path


def _collect(
    node: Node, conditional: bool, tree: Tree, file: Path, into: dict[str, Setting]
) -> None:
    if node.type == "object":
        for key, value in object_properties(node).items():
            assert key not in into, f"app setting {key} is set twice in {file.name}"
            into[key] = Setting(value, conditional, file)
    elif node.type == "call_expression":
        name = text(node.named_children[0])
        assert name == "union", f"cannot follow {name}() in the app settings of {file.name}"
        for arg in node.named_children[1].named_children:
            _collect(arg, conditional, tree, file, into)
    elif node.type == "ternary_expression":
        _condition, when_true, when_false = node.named_children
        _collect(when_true, True, tree, file, into)
        _collect(when_false, True, tree, file, into)
    elif node.type == "parenthesized_expression":
        _collect(node.named_children[0], conditional, tree, file, into)
    elif node.type == "identifier":
        declared = variables(tree)
        assert text(node) in declared, f"{text(node)} is not a variable of {file.name}"
        _collect(declared[text(node)], conditional, tree, file, into)
    else:
        raise AssertionError(f"cannot read app settings from a {node.type} in {file.name}")


@functools.cache
def app_settings() -> dict[str, Setting]:
    """Every app setting the templates write (Microsoft.Web/sites/config 'appsettings')."""
    settings: dict[str, Setting] = {}
    resources = 0
    for file in bicep_files():
        tree = parse(file)
        for _decl, body in resource_declarations(tree, "Microsoft.Web/sites/config@"):
            props = object_properties(body)
            if string_value(props["name"]) != "appsettings":
                continue
            resources += 1
            _collect(props["properties"], False, tree, file, settings)
    assert resources == 1, f"expected one appsettings resource under infra/, found {resources}"
    return settings
