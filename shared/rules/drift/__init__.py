"""Drift after a restore: how the target's settings differ from the source backup's
manifest, and what an operator should do about each difference.

A restore brings back APIM's configuration, not the settings in the manifest, so a
standby that is to take over must already have them. Only differences that change
what clients or backends experience are reported: custom hostnames and their
certificates, CA certificates (shared.rules.drift.certificates), protocols and ciphers,
the network mode, public network access, the managed identity, extra regions, scale and
diagnostic settings (shared.rules.drift.configuration). Per-service values that must
differ are not. Extra settings on the target are not drift either: the target may have
more.

All of it is pure: it compares the ``settings`` of two manifests (shared.rules.manifest).
The job that reads the two sides and stores the result is shared.jobs.drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from shared.rules.drift.certificates import ca_drift, hostname_drift
from shared.rules.drift.configuration import (
    custom_property_drift,
    diagnostics_drift,
    simple_drift,
)
from shared.rules.drift.items import MAX_DRIFT_CHARS, DriftItem, item


def compare(
    source: Mapping[str, Any], target: Mapping[str, Any], target_name: str
) -> list[DriftItem]:
    """The differences that matter between a source manifest's settings and the target's
    current ones, in a fixed order; empty when the target matches."""
    return [
        *hostname_drift(source, target, target_name),
        *ca_drift(source, target, target_name),
        *custom_property_drift(source, target, target_name),
        *simple_drift(source, target, target_name),
        *diagnostics_drift(source, target, target_name),
    ]


def bounded(items: Sequence[DriftItem], max_chars: int = MAX_DRIFT_CHARS) -> list[DriftItem]:
    """``items``, cut so that their JSON fits one table property; a cut list ends with an
    item saying how many differences were left out."""
    kept = list(items)
    if len(json.dumps(kept)) <= max_chars:
        return kept
    while kept:
        kept.pop()
        note = item(
            "drift",
            None,
            None,
            f"{len(items) - len(kept)} more difference(s) not shown: compare the manifest "
            "with the target.",
        )
        if len(json.dumps([*kept, note])) <= max_chars:
            return [*kept, note]
    return []
