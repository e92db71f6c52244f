"""``make demo``: the product's main job, end to end, on the local stack.

Starts Azurite and the APIM management emulator, configures the product through
environment variables (as app settings reach a function app), and calls the function
app's own timer handlers the way the Functions host does: a scheduled backup of two
services, housekeeping until both have finished, a dry-run prune (the ledger's third
job, retention: what would go and why, over tonight's backups and a few older ones the
demo adds as if earlier nights had made them), then a standby sync that restores
contoso-apim's newest backup into contoso-standby: the restore drill, whose figures
(RTO, drift) health then shows; and last the report (``python -m shared report``: one
self-contained HTML page, docs/report.md) of what the ledger now holds, whose path it
prints. The emulator's clock stands in for the waiting, so five minutes of APIM work
take a moment.

Exits 1 unless every operation Succeeded, the dry run proposes exactly the expected
deletions and deletes nothing, and the standby ends up holding exactly the source's
configuration. The stack is stopped on every way out.

    python -m scripts.demo        (from the repository root; ``make demo`` does this)
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest
from azure.storage.blob import BlobServiceClient

import function_app
from devstack.stack import EmulatorControl, LocalStack
from shared.__main__ import REPORT_FILE, format_table, write_report
from shared.jobs import backups, operations
from shared.rules.manifest import manifest_blob_name
from shared.rules.model import BackupRecord, OperationKind, OperationRecord, Status, Trigger
from shared.rules.naming import backup_name
from shared.runtime import Runtime, get_runtime, set_runtime
from shared.settings import Settings

# Both have a system-assigned identity (the default BACKUP_ACCESS_TYPE) and a tier that
# can be backed up; fabrikam-apim has only a user-assigned identity in the seed.
SOURCES = ("contoso-apim", "fabrikam-standby")
# The standby is only ever restored into: a restore target, never a backup source.
STANDBY_SOURCE, STANDBY = "contoso-apim", "contoso-standby"
OPERATION_SECONDS = 300  # how long each APIM operation runs on the emulator's clock
TICK_SECONDS = 60  # emulator time between two housekeeping runs
MAX_TICKS = 2 * OPERATION_SECONDS // TICK_SECONDS  # a stuck operation ends the demo, not hangs it
# Settings a developer's shell may carry that would change what the demo shows; the demo
# runs on the defaults for all of them.
OVERRIDDEN_SETTINGS = (
    "BACKUP_CONTAINER",
    "BACKUP_ACCESS_TYPE",
    "BACKUP_IDENTITY_CLIENT_ID",
    "BACKUP_STORAGE_KEY",
    "BACKUP_STORAGE__blobServiceUri",
    "BACKUP_STORAGE__tableServiceUri",
    "BACKUP_STORAGE__clientId",
    "LEDGER_TABLE",
    "OPERATIONS_TABLE",
    "RETENTION_DAYS",
    "MIN_KEEP",
)
SUCCEEDED = Status.SUCCEEDED.value
# Older backups the retention step adds (the demo cannot wait a month): contoso-apim as if
# the schedule had run 45, 33 and 12 nights ago, a backup of fabrikam-standby that failed
# 40 nights ago and left a blob, and a backup-named blob 50 days old with no ledger row.
HISTORY_DAYS = (45, 33, 12)
FAILED_DAYS = 40
ORPHAN_DAYS = 50


class DemoClock:
    """The product's clock: this machine's, plus the emulator time the demo lets pass,
    so that the durations the product records (a restore's RTO) are APIM's, not the
    moment the emulator takes."""

    def __init__(self) -> None:
        self.skipped = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.skipped


CLOCK = DemoClock()


def main() -> int:
    began = time.monotonic()
    # Warnings (a skipped service, a refused restore) belong to the story; the SDKs'
    # per-request INFO lines and the handlers' one-line summaries (said better below) do not.
    logging.basicConfig(level=logging.WARNING, format="  %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)

    print("Starting the local stack: Azurite and the APIM management emulator ...")
    with LocalStack.start() as stack:
        print(f"  up in {time.monotonic() - began:.1f}s; APIM emulator at {stack.arm_endpoint}")
        try:
            ok = run(stack)
        finally:
            set_runtime(None)  # its clients point at a stack that is about to go
    verdict = "succeeded" if ok else "FAILED"
    print(f"\nDemo {verdict} in {time.monotonic() - began:.1f}s; the local stack is stopped.")
    return 0 if ok else 1


def run(stack: LocalStack) -> bool:
    configure(stack)
    control = stack.control
    control.set_duration(OPERATION_SECONDS)
    print(f"Backing up {', '.join(SOURCES)}; standby pair {STANDBY_SOURCE} => {STANDBY}.")
    print(
        f"Each APIM operation takes {OPERATION_SECONDS}s on the emulator's clock; "
        f"housekeeping runs every {TICK_SECONDS}s of it."
    )
    backed_up = back_up(control)
    show_storage(stack)
    # A failed backup already fails the demo: stop there, so the failure is what the reader sees.
    if not backed_up:
        print("\nSkipping retention and standby sync: not every backup succeeded.")
        return False
    retained = show_retention(stack)
    synced = sync_standby(control)
    return write_the_report() and synced and retained


def configure(stack: LocalStack) -> None:
    """The product's settings, as environment variables: exactly what app settings do."""
    for name in OVERRIDDEN_SETTINGS:
        os.environ.pop(name, None)
    os.environ.update(stack.product_env())
    os.environ.update(
        {
            "APIM_SERVICES": ",".join(stack.service_id(n) for n in SOURCES),
            "RESTORE_TARGETS": ",".join(stack.service_id(n) for n in (*SOURCES, STANDBY)),
            "STANDBY_PAIRS": f"{STANDBY_SOURCE}=>{STANDBY}",
            # The emulator's own CA, through the standard variable: verification stays on.
            "REQUESTS_CA_BUNDLE": stack.ca_bundle,
        }
    )
    # Exactly these settings, read as the function app reads them, on the demo's clock.
    set_runtime(Runtime(Settings.from_env(dict(os.environ)), clock=CLOCK))


def tick() -> TimerRequest:
    """What the Functions host passes a timer function that fires on time."""
    return TimerRequest(past_due=False)


# Backups ----------------------------------------------------------------------------------


def back_up(control: EmulatorControl) -> bool:
    print("\n[1] Scheduled backup: function_app.scheduled_backup")
    function_app.scheduled_backup(tick())
    for record in ledger_rows():
        print(f"  started {record.backup_name}")
    statuses = settle(control, backup_statuses)
    return statuses == dict.fromkeys(SOURCES, SUCCEEDED)


def ledger_rows() -> list[BackupRecord]:
    return sorted(backups.list_backups(get_runtime()), key=lambda r: r.service)


def backup_statuses() -> dict[str, str]:
    return {r.service: r.status.value for r in ledger_rows()}


def settle(control: EmulatorControl, read_statuses: Callable[[], dict[str, str]]) -> dict[str, str]:
    """Let emulator time pass and run housekeeping, as its timer would, until nothing runs."""
    statuses = read_statuses()
    for n in range(1, MAX_TICKS + 1):
        control.advance_clock(TICK_SECONDS)
        CLOCK.skipped += timedelta(seconds=TICK_SECONDS)
        function_app.housekeeping_timer(tick())
        statuses = read_statuses()
        shown = "   ".join(f"{what} {status:<9}" for what, status in statuses.items())
        elapsed = f"+{n * TICK_SECONDS}s"
        print(f"  {elapsed:>5} housekeeping   {shown}".rstrip())
        if Status.RUNNING.value not in statuses.values():
            break
    return statuses


def show_storage(stack: LocalStack) -> None:
    settings = get_runtime().settings
    print(f"\n[2] The ledger (table {settings.ledger_table}) and the blobs APIM wrote")
    for line in format_table(ledger_rows()).splitlines():
        print(f"  {line}")
    # Listed with the stack's own connection, not the product's: what is really there.
    with BlobServiceClient.from_connection_string(stack.connection_string) as service:
        blobs = list(service.get_container_client(settings.container).list_blobs())
    print(f"  container {settings.container}: {len(blobs)} blob(s)")
    width = max((len(blob.name) for blob in blobs), default=0)
    for blob in blobs:
        print(f"    {blob.name:<{width}}  {blob.size:>7,} bytes")


# Retention --------------------------------------------------------------------------------


def show_retention(stack: LocalStack) -> bool:
    """POST /api/prune?dryRun=true through its handler: what would go, what stays, and why."""
    settings = get_runtime().settings
    print(
        "\n[3] Retention: POST /api/prune?dryRun=true (function_app.prune), "
        f"RETENTION_DAYS={settings.retention_days}, MIN_KEEP={settings.min_keep}"
    )
    expected = add_history(stack)
    print("  older backups added, as if earlier nights had made them (a demo cannot wait a month):")
    print(
        f"  {len(expected['pruned'])} due for pruning, 1 still young, and a backup blob "
        f"{ORPHAN_DAYS} days old with no ledger row"
    )
    before = storage_snapshot(stack)
    request = func.HttpRequest(
        "POST", "http://localhost/api/prune", params={"dryRun": "true"}, body=b""
    )
    response = function_app.prune(request)
    answer: dict[str, Any] = json.loads(response.get_body())
    if response.status_code != 200:
        print(f"  prune answered {response.status_code}: {answer}")
        return False
    width = max((len(e["backupName"]) for e in answer["pruned"] + answer["kept"]), default=0)
    for verb, entries in (("would prune", answer["pruned"]), ("would keep ", answer["kept"])):
        for e in entries:
            print(f"  {verb}  {e['backupName']:<{width}}  {e['status']:<9}  {e['reason']}")
    for orphan in answer["orphans"]:
        verb = "would delete" if orphan["deleted"] else "reports    "
        print(f"  {verb} {orphan['blobName']:<{width}}  no row     {orphan['reason']}")
    for error in answer["errors"]:
        print(f"  error        {error['name']}: {error['error']}")
    unchanged = storage_snapshot(stack) == before
    print(f"  dry run: {'nothing was deleted or changed' if unchanged else 'STORAGE CHANGED'}")
    proposed = {
        "pruned": {e["backupName"] for e in answer["pruned"]},
        "orphans": {o["blobName"] for o in answer["orphans"] if o["deleted"]},
    }
    return unchanged and not answer["errors"] and proposed == expected


def add_history(stack: LocalStack) -> dict[str, set[str]]:
    """Older ledger rows and blobs; the names a prune should propose to delete."""
    runtime = get_runtime()
    now = runtime.clock().replace(microsecond=0)
    tonight = {r.service: r for r in ledger_rows()}
    source = tonight[STANDBY_SOURCE]
    container = runtime.blobs.container
    content = container.download_blob(source.blob_name).readall()
    manifest = container.download_blob(manifest_blob_name(source.blob_name)).readall()
    due: set[str] = set()
    for days in HISTORY_DAYS:
        created = now - timedelta(days=days)
        name = backup_name(source.service, created)
        runtime.ledger.add(
            source.with_changes(
                backup_name=name,
                created_at=created,
                completed_at=created + timedelta(minutes=5),
                trigger=Trigger.SCHEDULE,
                operation_id="",
                operation_url="",
                manifest_blob=manifest_blob_name(name),
                etag=None,
            )
        )
        container.upload_blob(name, content)
        container.upload_blob(manifest_blob_name(name), manifest)
        if days > runtime.settings.retention_days:
            due.add(name)
    failed_source = tonight[SOURCES[1]]
    created = now - timedelta(days=FAILED_DAYS)
    failed = backup_name(failed_source.service, created)
    runtime.ledger.add(
        failed_source.with_changes(
            backup_name=failed,
            status=Status.FAILED,
            created_at=created,
            completed_at=created + timedelta(minutes=5),
            size_bytes=None,
            error="The operation failed (the demo's example of a failed night)",
            manifest_blob=None,
            certificates=(),
            trigger=Trigger.SCHEDULE,
            operation_id="",
            operation_url="",
            etag=None,
        )
    )
    container.upload_blob(failed, b"a partial backup")
    due.add(failed)
    orphan = backup_name(source.service, now - timedelta(days=ORPHAN_DAYS, hours=3))
    container.upload_blob(orphan, content)
    return {"pruned": due, "orphans": {orphan}}


def storage_snapshot(stack: LocalStack) -> tuple[list[str], dict[str, str]]:
    """The container's blob names and every ledger row's status: what a dry run must keep."""
    settings = get_runtime().settings
    with BlobServiceClient.from_connection_string(stack.connection_string) as service:
        names = sorted(
            b.name for b in service.get_container_client(settings.container).list_blobs()
        )
    return names, {
        r.backup_name: r.status.value
        for r in backups.list_backups(get_runtime(), include_expired=True)
    }


# Disaster recovery ------------------------------------------------------------------------


def sync_standby(control: EmulatorControl) -> bool:
    print("\n[4] Disaster recovery: function_app.standby_sync")
    print(f"  {STANDBY} before: {summary(control.service_config(STANDBY))}")
    function_app.standby_sync(tick())
    for operation in restores():
        print(f"  started restore of {operation.backup_name} into {operation.service}")
    statuses = settle(control, restore_statuses)
    for operation in restores():
        # Read back by id, as GET /api/operations/<id> does: the record a runbook would see.
        done = operations.get_operation(get_runtime(), operation.operation_id).operation
        error = f" ({done.error})" if done.error else ""
        print(f"  operation {done.operation_id}: {done.kind.value} {done.status.value}{error}")
    after = control.service_config(STANDBY)
    print(f"  {STANDBY} after:  {summary(after)}")
    matches = after == control.service_config(STANDBY_SOURCE)
    print(f"standby {STANDBY} now matches {STANDBY_SOURCE}: {'yes' if matches else 'NO'}")
    drilled = show_drill()
    return matches and drilled and statuses == {f"restore into {STANDBY}": SUCCEEDED}


def show_drill() -> bool:
    """GET /api/health through its handler: the standby sync was the restore drill."""
    response = function_app.health(func.HttpRequest("GET", "http://localhost/api/health", body=b""))
    body: dict[str, Any] = json.loads(response.get_body())
    print("\n[5] The restore drill, as GET /api/health (function_app.health) reports it")
    ok = bool(body.get("drills"))
    for drill in body.get("drills", []):
        last = drill["lastDrill"]
        if last is None:
            print(f"  {drill['service']} => {drill['target']}: no drill yet")
            ok = False
            continue
        print(
            f"  {drill['service']} => {drill['target']}: {last['status']}, "
            f"RTO {last['durationSeconds']:g}s (restore of {last['backupName']}), "
            f"{last['driftCount']} setting(s) drifted, completed {last['completedAt']}"
        )
        ok = ok and last["status"] == SUCCEEDED
    warnings = body["warnings"]["drills"]
    print(f"  drill warnings (DRILL_WARNING_DAYS): {len(warnings)}")
    return ok and not warnings


def write_the_report() -> bool:
    """``python -m shared report``: the ledger as one HTML page, with every service in it."""
    print("\n[5] The report: python -m shared report")
    path = write_report(get_runtime(), REPORT_FILE)
    page = path.read_text(encoding="utf-8")
    listed = all(f'data-service="{service}"' in page for service in SOURCES)
    print(f"  {path}  ({len(page):,} bytes; open it in a browser, it loads nothing)")
    return listed


def restores() -> list[OperationRecord]:
    return [op for op in get_runtime().operations.all() if op.kind is OperationKind.RESTORE]


def restore_statuses() -> dict[str, str]:
    return {f"restore into {op.service}": op.status.value for op in restores()}


def summary(config: Mapping[str, Any]) -> str:
    """The API names and how many of everything else: enough to see which config it is."""
    apis = ", ".join(str(api["name"]) for api in config.get("apis", [])) or "none"
    rest = ", ".join(f"{len(config[part])} {part}" for part in sorted(config) if part != "apis")
    return f"apis {apis}; {rest}"


if __name__ == "__main__":
    raise SystemExit(main())
