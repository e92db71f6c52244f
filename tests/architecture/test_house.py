"""The core's layers and sizes hold (docs/architecture.md), and the checks that say so
can fail: each is also run on a throwaway copy of the core with the rule broken."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import house

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "shared", tmp_path / "shared", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, check=False
    )


def _prepend(path: Path, line: str) -> None:
    text = path.read_text()
    head, _, rest = text.partition("from __future__ import annotations\n")
    path.write_text(f"{head}from __future__ import annotations\n{line}\n{rest}")


def test_the_core_keeps_its_shape() -> None:
    report = house.survey()
    assert report.modules > 30, "the survey found too few modules: is the path right?"
    assert report.ok, (
        report.long_modules,
        report.long_functions,
        report.circles,
        report.sdk_outside_adapters,
    )


def test_the_layer_contracts_hold() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # A rule that reaches for an adapter: the layers contract.
        ("rules/naming.py", "from shared.adapters import apim  # noqa", "Layers"),
        # An adapter that climbs to the jobs.
        ("adapters/blobs.py", "from shared.jobs import backups  # noqa", "Layers"),
        # A rule that talks to storage itself: the purity contract.
        ("rules/retention.py", "import azure.storage.blob  # noqa", "Rules are pure"),
    ],
)
def test_the_layer_contracts_catch_an_upward_import(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    root = _copy(tmp_path)
    _prepend(root / "shared" / module, line)
    result = _lint_imports(root)
    assert result.returncode != 0, result.stdout
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout


def test_house_catches_a_circle_a_long_function_and_an_sdk_import(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    before = house.survey(root)
    # A circle through a lazy import: rules.naming <-> rules.model.
    (root / "shared/rules/model.py").write_text(
        (root / "shared/rules/model.py").read_text()
        + "\n\ndef _late() -> None:\n    from shared.rules import naming  # noqa: F401\n"
    )
    _prepend(root / "shared/rules/naming.py", "from shared.rules import model  # noqa")
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    (root / "shared/rules/long.py").write_text(f"def long() -> None:\n{body}\n")
    (root / "shared/jobs/sdk.py").write_text("from azure.data.tables import TableClient\n")
    report = house.survey(root)
    assert ["shared.rules.model", "shared.rules.naming"] in report.circles
    new_long = set(report.long_functions) - set(before.long_functions)
    assert new_long == {("shared/rules/long.py:1 long", 62)}
    new_sdk = set(report.sdk_outside_adapters) - set(before.sdk_outside_adapters)
    assert new_sdk == {("shared/jobs/sdk.py", "azure.data.tables")}
    assert not report.ok


def test_house_counts_module_lines(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "shared/rules/big.py").write_text("X = 1\n" * (house.MAX_MODULE_LINES + 1))
    assert ("shared/rules/big.py", house.MAX_MODULE_LINES + 1) in house.survey(root).long_modules
