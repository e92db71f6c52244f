"""Emitting an outcome record (shared.rules.outcomes): one per ended backup and restore,
called where an operation settles (shared.jobs.operations)."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from shared.rules.model import OperationRecord, iso
from shared.rules.outcomes import LOGGER_NAME, PREFIX, outcome_fields

log = logging.getLogger(LOGGER_NAME)


def format_outcome(fields: dict[str, object]) -> str:
    """``OUTCOME <compact JSON, keys sorted>``, times ISO 8601 UTC with ``Z``."""
    plain = {k: iso(v) if isinstance(v, datetime) else v for k, v in fields.items()}
    return f"{PREFIX} {json.dumps(plain, sort_keys=True, separators=(',', ':'), default=str)}"


def emit(
    operation: OperationRecord, size_bytes: int | None = None, code: str | None = None
) -> None:
    """Log the outcome of an ended operation: the JSON in the message, and the same
    fields (times as text) as ``extra``, for pipelines that chart custom dimensions.
    Never raises: a record that cannot be written must not undo a settled verdict."""
    try:
        fields = outcome_fields(operation, size_bytes, code)
        message = format_outcome(fields)
        extra = {k: iso(v) if isinstance(v, datetime) else v for k, v in fields.items()}
        log.info("%s", message, extra=extra)
    except Exception:
        logging.getLogger(__name__).exception(
            "Could not write the outcome record of %s", operation.operation_id
        )
