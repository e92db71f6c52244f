"""Restore drills (shared.rules.drills): recording a standby sync's restore as its
pair's last drill when it settles (called by shared.jobs.operations), and reading the
drills for health."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shared.adapters.drills import DrillStore
from shared.rules.drills import Drill, is_drill

if TYPE_CHECKING:
    from shared.rules.model import OperationRecord
    from shared.runtime import Runtime

log = logging.getLogger(__name__)


def store(runtime: Runtime) -> DrillStore:
    return DrillStore(runtime.operations.table)


def record(runtime: Runtime, operation: OperationRecord) -> Drill | None:
    """Note an ended standby-sync restore as its pair's last drill (an older one settled
    late never replaces a newer). Never raises: the verdict is already stored."""
    if not is_drill(operation):
        return None
    try:
        drills = store(runtime)
        previous = drills.get(operation.source_service, operation.service)
        if previous is not None and previous.started_at > operation.created_at:
            return previous
        drill = Drill.of(operation, previous)
        drills.save(drill)
        return drill
    except Exception:
        log.exception("Could not record restore drill %s", operation.operation_id)
        return None
