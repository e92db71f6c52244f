"""Operations in flight: starting one under the service's lock, and settling it by polling.

The order of writes is what keeps the ledger honest when a process dies mid-way:
1. take the service's lock (atomic; the loser of a race is refused, nothing written);
2. write our rows as Running, *before* APIM is called, so a crash leaves a trace that
   housekeeping later settles (a timeout) rather than an untracked backup;
3. call APIM without waiting, then record the URL to poll on the operation row; for a
   backup, then write its settings manifest (never fails the start: a failure is noted
   as ManifestError) and note the URL and the manifest on the ledger row. A crash in
   between leaves the ledger row without them: it is settled from the operation row as
   in 4, and an unnamed manifest blob is still pruned with its backup (by its name);
4. when a poll says the operation ended: the operation row first (ETag-guarded, so one
   verdict wins), the ledger row second, the lock last. A crash after the first write
   is repaired by housekeeping, which settles Running ledger rows from their operation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared import signals
from shared.adapters.ledger import Conflict
from shared.jobs import debts, drills, outcomes
from shared.jobs.drift import restore_drift
from shared.parallel import run_each
from shared.rules import errors
from shared.rules.checks import BUSY_STATES, Outcome, Verdict, judge_poll
from shared.rules.evidence import Evidence, judge_unconfirmed
from shared.rules.model import OperationKind, OperationRecord, Status, Trigger
from shared.rules.naming import ServiceId
from shared.rules.service import AccessType, PollResult, PollState, StorageTarget
from shared.runtime import Runtime

log = logging.getLogger(__name__)

# How long a lock may exist without its operation row before it counts as abandoned.
LOCK_GRACE = timedelta(minutes=10)
# What a status URL asks the caller to wait between polls while an operation runs.
RETRY_AFTER_SECONDS = {OperationKind.BACKUP: 30, OperationKind.RESTORE: 60}


def storage_target(runtime: Runtime) -> StorageTarget:
    settings = runtime.settings
    return StorageTarget(
        account=settings.storage_account,
        container=settings.container,
        access_type=settings.access_type,
        client_id=settings.identity_client_id
        if settings.access_type is AccessType.USER_ASSIGNED
        else None,
        access_key=settings.storage_key if settings.access_type is AccessType.ACCESS_KEY else None,
    )


def new_operation_id() -> str:
    import uuid  # on first use: a lighter cold start

    return uuid.uuid4().hex


def take_lock(runtime: Runtime, service: ServiceId, operation_id: str) -> None:
    """Claim ``service`` for one operation, or refuse with OperationInProgress."""
    if not runtime.operations.acquire(service.key, operation_id, runtime.clock(), LOCK_GRACE):
        holder = runtime.operations.lock_holder(service.key)
        raise errors.OperationInProgress(
            f"A backup or restore is already running on {service.name} (operation {holder})"
        )


def release_lock(runtime: Runtime, operation: OperationRecord) -> None:
    runtime.operations.release(operation.service, operation.operation_id)


def new_operation(
    kind: OperationKind,
    operation_id: str,
    service: ServiceId,
    backup_name: str,
    trigger: Trigger,
    runtime: Runtime,
    source_service: str = "",
) -> OperationRecord:
    return OperationRecord(
        operation_id=operation_id,
        kind=kind,
        service=service.key,
        service_id=service.resource_id,
        backup_name=backup_name,
        status=Status.RUNNING,
        trigger=trigger,
        created_at=runtime.clock(),
        source_service=source_service,
        unconfirmed=True,  # until APIM answers an operation URL
    )


def launch(
    runtime: Runtime,
    operation: OperationRecord,
    start: Callable[[], str],
    *,
    on_refused: Callable[[], None] = lambda: None,
    on_failed: Callable[[str], None] = lambda _message: None,
) -> OperationRecord:
    """Call APIM to start a recorded operation, and record the URL to poll.

    APIM saying busy means nothing was begun: our rows go (``on_refused`` removes the
    caller's own). Any other refusal is kept as a Failed record. Either way the lock is
    released and the refusal raised. An ambiguous answer (StartUnconfirmed) is neither:
    the rows stay Running without a URL, the lock stays held, and refresh settles the
    operation from evidence; the caller gets the operation back as if it had started.
    """
    try:
        url = start()
    except errors.OperationInProgress:
        on_refused()
        runtime.operations.delete(operation)
        release_lock(runtime, operation)
        raise
    except errors.StartUnconfirmed as exc:
        log.warning(
            "%s %s of %s: start unconfirmed (%s); it will be settled from evidence",
            operation.kind.value,
            operation.operation_id,
            operation.service,
            exc.message,
        )
        return runtime.operations.save(operation.with_changes(start_error=exc.message))
    except errors.ProductError as exc:
        on_failed(exc.message)
        failed = operation.with_changes(
            status=Status.FAILED, error=exc.message, completed_at=runtime.clock()
        )
        runtime.operations.save(failed)
        signal_failure(failed)  # before the lock: a crash there must not lose it
        record_ended(runtime, failed, code=exc.code)
        release_lock(runtime, operation)
        raise
    return runtime.operations.save(
        operation.with_changes(operation_url=url, unconfirmed=False, start_error=None)
    )


def signal_failure(operation: OperationRecord) -> None:
    """BackupFailed or RestoreFailed for an operation that ended Failed."""
    common: dict[str, object] = {
        "service": operation.service,
        "backupName": operation.backup_name,
        "operationId": operation.operation_id,
        "error": operation.error or "",
    }
    if operation.kind is OperationKind.RESTORE:
        signals.emit(
            signals.Signal.RESTORE_FAILED, sourceService=operation.source_service, **common
        )
    else:
        signals.emit(signals.Signal.BACKUP_FAILED, **common)


def record_ended(
    runtime: Runtime, operation: OperationRecord, size: int | None = None, code: str | None = None
) -> None:
    """Once per stored verdict: its outcome record, and for a standby sync's restore,
    its pair's last drill. Neither raises."""
    outcomes.emit(operation, size, code)
    drills.record(runtime, operation)


@dataclass(frozen=True)
class Progress:
    operation: OperationRecord
    retry_after: int


def retry_after(operation: OperationRecord, poll: PollResult | None = None) -> int:
    suggested = RETRY_AFTER_SECONDS[operation.kind]
    if poll is not None and poll.retry_after:
        return max(1, min(poll.retry_after, suggested))
    return suggested


def refresh(runtime: Runtime, operation: OperationRecord) -> Progress:
    """Poll a running operation once; settle it when it has ended (or timed out)."""
    if not operation.is_running:
        return Progress(operation, 0)
    service = ServiceId.parse(operation.service_id)
    now = runtime.clock()
    poll = _poll(runtime, operation, service, now)
    verdict = _judge(runtime, operation, service, poll, now)
    if verdict.outcome is Outcome.RUNNING:
        return Progress(operation, retry_after(operation, poll))
    settled, size = _settled(runtime, operation, verdict, now)
    try:
        # The operation row first, guarded by its ETag: of two hosts settling at once
        # (a timeout here, a success there) exactly one verdict wins, and the ledger
        # follows that verdict, never the other.
        settled = runtime.operations.save(settled)
    except Conflict:
        latest = runtime.operations.get(operation.operation_id)
        return Progress(latest or settled, 0)
    _follow_verdict(runtime, settled, poll, size)
    return Progress(settled, 0)


def _poll(
    runtime: Runtime, operation: OperationRecord, service: ServiceId, now: datetime
) -> PollResult:
    """What the operation's state is now: its URL polled once, or, without one, what the
    evidence says of an unconfirmed start."""
    if operation.operation_url:
        return runtime.apim.poll(service, operation.operation_url)
    if operation.unconfirmed:
        return judge_unconfirmed(
            operation.kind.value,
            _evidence(runtime, operation, service),
            operation.created_at,
            now,
            LOCK_GRACE,
            operation.backup_name,
            service.name,
        )
    if now - operation.created_at > LOCK_GRACE:
        # The start was never recorded (a crash, or APIM refused before answering a
        # URL): there is nothing to poll, and the service must not stay locked for hours.
        return PollResult(PollState.FAILED, error="No operation URL was recorded for this start")
    return PollResult(PollState.UNKNOWN, error="the start is still being recorded")


def _judge(
    runtime: Runtime,
    operation: OperationRecord,
    service: ServiceId,
    poll: PollResult,
    now: datetime,
) -> Verdict:
    """The poll judged against OPERATION_TIMEOUT_MINUTES."""
    timeout = timedelta(minutes=runtime.settings.operation_timeout_minutes)
    verdict = judge_poll(poll, operation.created_at, now, timeout)
    if (
        verdict.outcome is Outcome.FAILED
        and poll.state is PollState.UNKNOWN
        and operation.kind is OperationKind.BACKUP
        and _finished_backup(_evidence(runtime, operation, service))
    ):
        # Timed out while Resource Manager could not be asked (a throttled or dropped
        # poll): the blob and an idle service say APIM finished it. Never lose it.
        return Verdict(Outcome.SUCCEEDED)
    return verdict


def _settled(
    runtime: Runtime, operation: OperationRecord, verdict: Verdict, now: datetime
) -> tuple[OperationRecord, int | None]:
    """The ended operation's row as the verdict says, not yet written; and, for a
    backup that succeeded, its blob's size (None when the blob is missing: then Failed)."""
    size: int | None = None
    error = verdict.error
    if verdict.outcome is Outcome.SUCCEEDED and operation.kind is OperationKind.BACKUP:
        size = runtime.blobs.size_of(operation.backup_name)
        if size is None:
            error = (
                f"API Management reported success, but blob {operation.backup_name} is not in "
                f"container {runtime.settings.container}"
            )
    settled = operation.with_changes(
        status=Status.FAILED if error else Status.SUCCEEDED, completed_at=now, error=error
    )
    if settled.status is Status.SUCCEEDED and settled.kind is OperationKind.RESTORE:
        settled = restore_drift(runtime, settled)  # in the same guarded write as the verdict
    return settled, size


def _follow_verdict(
    runtime: Runtime, settled: OperationRecord, poll: PollResult, size: int | None
) -> None:
    """Once the verdict is stored: its signals, then the ledger row, then the lock (and,
    for a scheduled backup that failed, the debt)."""
    # Signalled as soon as the verdict is stored: nothing settles this operation again,
    # so a process that dies in the writes below must not take the signal with it.
    if poll.url_rejected:
        signals.emit(
            signals.Signal.OPERATION_URL_REJECTED,
            service=settled.service,
            operationId=settled.operation_id,
            reason=poll.error or "",
        )
    if settled.status is Status.FAILED:
        signal_failure(settled)
    record_ended(runtime, settled, size)
    settle_ledger_row(runtime, settled, size)
    release_lock(runtime, settled)
    log.info(
        "%s %s of %s ended %s%s",
        settled.kind.value,
        settled.operation_id,
        settled.service,
        settled.status.value,
        f": {settled.error}" if settled.error else "",
    )
    if settled.status is Status.FAILED:
        debts.note_failed(runtime, settled)


def _finished_backup(evidence: Evidence) -> bool:
    state = evidence.provisioning_state
    return evidence.blob_size is not None and state is not None and state.lower() not in BUSY_STATES


def _evidence(runtime: Runtime, operation: OperationRecord, service: ServiceId) -> Evidence:
    """The service's state and (for a backup) its blob; a state that cannot be read is
    None (no verdict this time)."""
    try:
        state: str | None = runtime.apim.provisioning_state(service)
    except errors.ApimRequestFailed as exc:
        log.warning("No evidence for %s this time: %s", operation.operation_id, exc.message)
        state = None
    size = None
    if operation.kind is OperationKind.BACKUP and state is not None:
        size = runtime.blobs.size_of(operation.backup_name)
    return Evidence(state, size)


def settle_ledger_row(
    runtime: Runtime, operation: OperationRecord, size: int | None = None
) -> None:
    """Bring an ended backup's ledger row, if it still says Running, in line with its
    operation. Also the repair for a crash between the operation row and this one."""
    if operation.kind is not OperationKind.BACKUP or operation.is_running:
        return
    record = runtime.ledger.get(operation.service, operation.backup_name)
    if record is None or record.status is not Status.RUNNING:
        return
    completed = operation.completed_at or runtime.clock()
    if operation.status is Status.SUCCEEDED:
        size = size if size is not None else runtime.blobs.size_of(operation.backup_name)
    if operation.status is Status.SUCCEEDED and size is not None:
        changes: dict[str, object] = {"status": Status.SUCCEEDED, "size_bytes": size}
    else:
        error = operation.error or f"The blob {operation.backup_name} is missing"
        changes = {"status": Status.FAILED, "error": error}
    try:
        runtime.ledger.save(record.with_changes(completed_at=completed, **changes))
    except Conflict:
        log.warning(
            "Ledger row %s changed while it was being settled; left as is", record.backup_name
        )


def finish_running(runtime: Runtime) -> list[OperationRecord]:
    """One status request per running operation; each failure is logged, none stops the rest."""
    return [op for op in poll_running(runtime) if not op.is_running]


def poll_running(runtime: Runtime) -> list[OperationRecord]:
    """Poll every running operation once, MAX_PARALLEL at a time: each one's state after
    its poll (still running, settled, or as read when its poll failed)."""

    def poll(operation: OperationRecord) -> OperationRecord:
        try:
            return refresh(runtime, operation).operation
        except Exception:
            log.exception("Could not refresh operation %s", operation.operation_id)
            return operation

    running = list(runtime.operations.running())
    return run_each(running, poll, runtime.settings.max_parallel, "poll")


def get_operation(runtime: Runtime, operation_id: str) -> Progress:
    """An operation's state, asking Resource Manager once if it is still running."""
    operation = runtime.operations.get(operation_id) if _plausible_id(operation_id) else None
    if operation is None:
        raise errors.OperationNotFound(f"No operation with id {operation_id[:64]}")
    return refresh(runtime, operation)


def _plausible_id(operation_id: str) -> bool:
    return len(operation_id) == 32 and all(c in "0123456789abcdef" for c in operation_id)
