"""Drift after a restore, the job: read the two sides (the backup's manifest blob and one
GET of the target) and note on the restore's operation what shared.rules.drift finds,
or why it found nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shared.rules.drift import bounded, compare
from shared.rules.drift.items import MAX_FIELD_CHARS
from shared.rules.errors import ProductError
from shared.rules.naming import ServiceId, parse_backup_name

if TYPE_CHECKING:
    from shared.rules.model import OperationRecord
    from shared.runtime import Runtime

log = logging.getLogger(__name__)


def restore_drift(runtime: Runtime, operation: OperationRecord) -> OperationRecord:
    """A succeeded restore with its drift (or why there is none) noted. Never raises: the
    restore has succeeded whatever this finds."""
    try:
        source_key = operation.source_service or parse_backup_name(operation.backup_name).service
        record = runtime.ledger.get(source_key, operation.backup_name)
        if record is None or not record.manifest_blob:
            why = (record.manifest_error if record else None) or "it has no manifest"
            return operation.with_changes(
                drift=None, drift_error=f"No drift computed: backup {operation.backup_name}: {why}"
            )
        document = runtime.blobs.read_json(record.manifest_blob)
        source = document.get("settings") if isinstance(document, dict) else None
        if not isinstance(source, dict):
            return operation.with_changes(
                drift=None, drift_error=f"No drift computed: {record.manifest_blob} is missing"
            )
        target = ServiceId.parse(operation.service_id)
        current = runtime.apim.settings_of(target)
        current["diagnosticSettings"] = runtime.apim.try_diagnostic_settings(target)[0]
        found = bounded(compare(source, current, target.name))
    except ProductError as exc:  # Resource Manager refused or could not be reached
        return operation.with_changes(
            drift=None, drift_error=f"No drift computed: {exc.message}"[:MAX_FIELD_CHARS]
        )
    except Exception as exc:
        log.warning(
            "Drift of restore %s not computed: %s", operation.operation_id, type(exc).__name__
        )
        return operation.with_changes(
            drift=None, drift_error=f"No drift computed: {type(exc).__name__}"
        )
    if found:
        log.warning(
            "Restore of %s into %s (%s): %d setting(s) differ from the source: %s",
            operation.backup_name,
            operation.service,
            operation.trigger.value,
            len(found),
            "; ".join(str(item["action"]) for item in found),
        )
    else:
        log.info(
            "Restore of %s into %s: the target's settings match the source's manifest",
            operation.backup_name,
            operation.service,
        )
    return operation.with_changes(drift=tuple(found), drift_error=None)
