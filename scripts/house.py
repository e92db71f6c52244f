"""``python -m scripts.house``: the size and shape rules of ``shared/``, counted.

- no import circle between the product's modules (every import counts: at module top,
  inside a function, or only for the type checker; a lazy import is still a dependency);
- no module over ``MAX_MODULE_LINES`` lines;
- no function over ``MAX_FUNCTION_LINES`` lines (from ``def`` to its last line);
- no Azure SDK client package (tables, blobs, ARM, identity) imported outside
  ``shared/adapters/``: a job or a setting reaches Azure through an adapter. Elsewhere
  only ``azure.core`` (its exceptions, match conditions) and, in ``shared/api/``,
  ``azure.functions`` may be imported.

The layers themselves (which folder may import which) are import-linter's contracts in
pyproject.toml (``lint-imports``); this adds what import-linter does not count. Prints
every offender and the totals; exits 1 when any rule is broken. ``make test`` runs it
through tests/architecture/test_house.py.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "shared"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
ADAPTERS = f"{PACKAGE}.adapters"
SDK_PACKAGES = ("azure.data", "azure.storage", "azure.mgmt", "azure.identity")


@dataclass(frozen=True)
class Report:
    modules: int
    long_modules: list[tuple[str, int]]
    long_functions: list[tuple[str, int]]
    circles: list[list[str]]
    sdk_outside_adapters: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return not (
            self.long_modules or self.long_functions or self.circles or self.sdk_outside_adapters
        )


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, name: str, known: set[str]) -> set[str]:
    """The product modules a module imports, wherever the import statement stands."""
    found: set[str] = set()
    package = name if name in known and _is_package(name, known) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(_owner(alias.name, known) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else _owner(base, known))
    found.discard("")
    found.discard(name)
    return found


def _is_package(name: str, known: set[str]) -> bool:
    return any(other.startswith(name + ".") for other in known)


def _owner(name: str, known: set[str]) -> str:
    """The longest known module that is ``name`` or contains it ('' when none)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def sdk_imports(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        names = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and not node.level
            else []
        )
        yield from (n for n in names if n.startswith(SDK_PACKAGES))


def functions(tree: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            end = node.end_lineno or node.lineno
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            yield f"{prefix}:{node.lineno} {node.name}", end - start + 1


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def survey(root: Path = ROOT, package: str = PACKAGE) -> Report:
    paths = sorted((root / package).rglob("*.py"))
    trees = {module_name(p, root): (p, ast.parse(p.read_text(), str(p))) for p in paths}
    known = set(trees)
    graph: dict[str, set[str]] = {}
    long_modules: list[tuple[str, int]] = []
    long_functions: list[tuple[str, int]] = []
    sdk: list[tuple[str, str]] = []
    for name, (path, tree) in trees.items():
        graph[name] = {m for m in imported_modules(tree, name, known) if m in known}
        # A package's __init__ is imported with each of its modules; it is not a
        # dependency of theirs unless it imports them.
        graph[name] = {m for m in graph[name] if not (name.startswith(m + "."))}
        lines = len(path.read_text().splitlines())
        relative = str(path.relative_to(root))
        if lines > MAX_MODULE_LINES:
            long_modules.append((relative, lines))
        long_functions.extend(
            (where, length)
            for where, length in functions(tree, relative)
            if length > MAX_FUNCTION_LINES
        )
        if not (name == ADAPTERS or name.startswith(ADAPTERS + ".")):
            sdk.extend((relative, module) for module in sorted(set(sdk_imports(tree))))
    return Report(len(trees), long_modules, long_functions, circles(graph), sdk)


def main() -> int:
    report = survey()
    for path, lines in report.long_modules:
        print(f"module over {MAX_MODULE_LINES} lines: {path} ({lines})")
    for where, lines in report.long_functions:
        print(f"function over {MAX_FUNCTION_LINES} lines: {where} ({lines})")
    for group in report.circles:
        print("import circle: " + " <-> ".join(group))
    for path, module in report.sdk_outside_adapters:
        print(f"SDK outside the adapters: {path} imports {module}")
    print(
        f"{report.modules} modules in {PACKAGE}/: {len(report.circles)} circles, "
        f"{len(report.long_modules)} modules over {MAX_MODULE_LINES} lines, "
        f"{len(report.long_functions)} functions over {MAX_FUNCTION_LINES} lines, "
        f"{len(report.sdk_outside_adapters)} SDK imports outside the adapters"
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
