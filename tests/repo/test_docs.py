"""docs/ is the reference users rely on: its settings table is exactly the product's
settings with the code's defaults, its links resolve, and the README and docs point at
nothing outside the repository."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.settings import SETTING_NAMES, Settings

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SETTINGS_DOC = DOCS / "settings.md"
# Announced this round (BRIEF: callers without keys); documented before the code that
# reads it reaches this branch. Allowed in the table only while SETTING_NAMES lacks it.
ANNOUNCED = {"API_AUTH"}
# Written by other branches of this round: a link to one is checked once it exists.
ANNOUNCED_FILES = {DOCS / "openapi.yaml", DOCS / "reliability.md", DOCS / "performance.md"}
# A configuration with only the required settings: everything else takes its default.
REQUIRED = {
    "APIM_SERVICES": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
    "/providers/Microsoft.ApiManagement/service/contoso-apim",
    "BACKUP_STORAGE_ACCOUNT": "devstoreaccount1",
    "BACKUP_STORAGE": "UseDevelopmentStorage=true",
}
# Setting -> the Settings attribute holding its value, for the defaults the table states.
DEFAULTS = {
    "BACKUP_CONTAINER": "container",
    "BACKUP_ACCESS_TYPE": "access_type",
    "LEDGER_TABLE": "ledger_table",
    "OPERATIONS_TABLE": "operations_table",
    "BACKUP_SCHEDULE": "backup_schedule",
    "HOUSEKEEPING_SCHEDULE": "housekeeping_schedule",
    "STANDBY_SCHEDULE": "standby_schedule",
    "RETENTION_DAYS": "retention_days",
    "MIN_KEEP": "min_keep",
    "RPO_HOURS": "rpo_hours",
    "CHANGE_QUIET_MINUTES": "change_quiet_minutes",
    "CHANGE_MAX_DELAY_MINUTES": "change_max_delay_minutes",
    "CHANGE_BACKUPS_PER_DAY": "change_backups_per_day",
    "OPERATION_TIMEOUT_MINUTES": "operation_timeout_minutes",
    "LEDGER_HISTORY_DAYS": "ledger_history_days",
    "MAX_PARALLEL": "max_parallel",
    "CERT_WARNING_DAYS": "cert_warning_days",
    "DRILL_WARNING_DAYS": "drill_warning_days",
    "ARM_ENDPOINT": "arm_endpoint",
    "ARM_CREDENTIAL": "arm_credential",
}
_ROW = re.compile(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)`\s*\|([^|]*)\|")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def table_rows(doc: Path, heading: str) -> dict[str, str]:
    """Setting name -> its second cell, for the table under ``heading``."""
    text = doc.read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            assert match[1] not in rows, f"{match[1]} is in the table twice"
            rows[match[1]] = match[2].strip()
    return rows


def product_table() -> dict[str, str]:
    return table_rows(SETTINGS_DOC, "## Product settings")


def test_the_settings_table_is_exactly_the_products_settings() -> None:
    documented = set(product_table())
    undocumented = sorted(set(SETTING_NAMES) - documented)
    unread = sorted(documented - set(SETTING_NAMES) - ANNOUNCED)
    assert not undocumented, f"docs/settings.md lacks {undocumented}"
    assert not unread, f"docs/settings.md documents settings nothing reads: {unread}"
    assert documented >= ANNOUNCED


def test_the_settings_table_follows_the_codes_order() -> None:
    documented = [name for name in product_table() if name in SETTING_NAMES]
    assert documented == list(SETTING_NAMES)


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_each_stated_default_is_the_codes(name: str) -> None:
    stated = product_table()[name].strip("`")
    value = getattr(Settings.from_env(REQUIRED), DEFAULTS[name])
    actual = str(getattr(value, "value", value))
    if isinstance(value, int | float):
        assert float(stated) == float(value), f"{name}: docs say {stated}, code {value}"
    else:
        assert stated == actual, f"{name}: docs say {stated!r}, code {actual!r}"


def test_the_host_settings_in_the_sample_are_explained() -> None:
    sample = json.loads((REPO / "local.settings.sample.json").read_text(encoding="utf-8"))
    others = set(sample["Values"]) - set(SETTING_NAMES) - ANNOUNCED
    explained = table_rows(SETTINGS_DOC, "## Settings of the host and the platform")
    unexplained = sorted(others - set(explained))
    assert not unexplained, f"docs/settings.md does not explain {unexplained}"


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in _LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if path in ANNOUNCED_FILES and not path.exists():
            continue
        if not path.exists():
            broken.append(target)
    assert not broken, f"{doc.name}: links to nothing: {broken}"


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_points_outside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for outside in ("CONTRACT.md", "FACTS.md", "STYLE.md", "shared material", "/work/"):
        assert outside not in text, f"{doc.name} points at {outside!r}, outside the repository"


def test_the_readme_links_to_the_reference_and_its_index_to_every_page() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "(docs/README.md)" in readme
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    pages = {p.name for p in DOCS.iterdir() if p.suffix in (".md", ".yaml")} - {"README.md"}
    listed = {t.split("#", 1)[0] for t in _LINK.findall(index)}
    missing = sorted(pages - listed)
    assert not missing, f"docs/README.md does not list {missing}"
