"""Settling an unconfirmed start from evidence, never by a blind timeout. Pure, no I/O.

A start is unconfirmed when APIM's answer was lost or ambiguous (500, 502, 504, 503
without Retry-After, a dropped connection, a timeout, a 409 after a retried try) or
when the process died between calling APIM and recording the operation URL. There is
then no URL to poll; what can be observed is the service's provisioning state and, for
a backup, the blob with the backup's unique name:

backup:
- the blob is there and the service is not busy: APIM took the backup and finished it
  (Succeeded; a name is unique per service and second, so the blob is this backup's);
- the service is busy (Updating...): an operation runs on it, and since the product holds
  the service's lock it is most likely this one: wait (the operation timeout still
  applies). After a 409 to a retried try it may be another's; waiting costs nothing, and
  the blob decides once the service is idle;
- not busy and no blob, once the grace has passed: APIM never took it, or took it and
  failed; either way no backup exists (Failed);
- the state cannot be read: ask again next time.

restore (a restore leaves no blob; what it changed cannot be compared from here):
- busy: wait, as above;
- not busy once the grace has passed: Failed, saying the outcome is unverified, so that
  an operator (or the runbook, which fails the job) checks the target. A restore
  reported as succeeded when it may not have run would be worse than a false failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.rules.checks import BUSY_STATES
from shared.rules.service import PollResult, PollState


@dataclass(frozen=True)
class Evidence:
    provisioning_state: str | None  # None: Resource Manager could not be asked
    blob_size: int | None = None  # backups: the blob's size; None when absent


def judge_unconfirmed(
    kind: str,
    evidence: Evidence,
    started: datetime,
    now: datetime,
    grace: timedelta,
    name: str,
    service: str,
) -> PollResult:
    """What the evidence says about an unconfirmed backup or restore, as a poll would."""
    state = evidence.provisioning_state
    if state is None:
        return PollResult(PollState.UNKNOWN, error="the service's state could not be read")
    busy = state.lower() in BUSY_STATES
    if kind == "backup" and evidence.blob_size is not None and not busy:
        return PollResult(PollState.SUCCEEDED)
    if busy or now - started <= grace:
        return PollResult(PollState.UNKNOWN, error=f"start unconfirmed; {service} is {state}")
    minutes = int((now - started).total_seconds() // 60)
    if kind == "backup":
        return PollResult(
            PollState.FAILED,
            error=(
                f"The start was not confirmed and, {minutes} minutes later, {service} is "
                f"{state} with no blob {name}: API Management did not take the backup"
            ),
        )
    return PollResult(
        PollState.FAILED,
        error=(
            f"The start was not confirmed and, {minutes} minutes later, {service} is {state}: "
            f"whether the restore of {name} ran cannot be verified; check the service and "
            "restore again if needed"
        ),
    )
