"""local.settings.sample.json (written at the repo root) resolves every timer schedule."""

from __future__ import annotations

import json

import pytest

from tests.infra import REPO
from tests.infra.test_bicep import timer_settings

SAMPLE = REPO / "local.settings.sample.json"


@pytest.mark.skipif(not SAMPLE.exists(), reason="local.settings.sample.json is not there yet")
@pytest.mark.parametrize("name", sorted(timer_settings()))
def test_sample_sets_every_timer_setting(name: str) -> None:
    values = json.loads(SAMPLE.read_text(encoding="utf-8"))["Values"]
    value = values.get(name, "")
    assert value.strip(), f"local.settings.sample.json does not set {name}"
    assert len(value.split()) == 6, f"{name} is not a six-field NCRONTAB: {value!r}"
