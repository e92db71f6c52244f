"""One drift item: a setting, its value on the source and on the target, and what to
do, each bounded; as a restore's operation row stores them (shared.rules.drift)."""

from __future__ import annotations

from typing import Any

DriftItem = dict[str, str | None]

# A restore's drift lives on its operation row: one Table Storage string property
# (at most 32K characters). A longer list is cut, and says so.
MAX_DRIFT_CHARS = 30_000
MAX_FIELD_CHARS = 400


def item(setting: str, source: Any, target: Any, action: str) -> DriftItem:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)[:MAX_FIELD_CHARS]

    return {
        "setting": setting[:MAX_FIELD_CHARS],
        "source": text(source),
        "target": text(target),
        "action": action[:MAX_FIELD_CHARS],
    }
