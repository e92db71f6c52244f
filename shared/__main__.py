"""The operator's command line, over the same core as the functions.

    python -m shared backup [--service NAME] [--wait]
    python -m shared restore BACKUP [--target NAME] [--dry-run] [--wait]
    python -m shared status OPERATION_ID
    python -m shared list [--service NAME] [--status STATUS] [--all]
    python -m shared show BACKUP          (the ledger row and the settings manifest)
    python -m shared housekeeping
    python -m shared prune [--dry-run]
    python -m shared doctor [--storage-account-id ID] [--no-write]   (can this setup back up?)
    python -m shared report [--out FILE]  (one self-contained HTML page; prints its path)

Settings come from the environment; ``local.settings.json`` (its ``Values``) fills in
what the environment does not set, as ``func start`` would.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from azure.core.exceptions import AzureError

from shared.jobs import backups, doctor, housekeeping, operations, report, restores
from shared.rules import doctor as rules_doctor
from shared.rules import errors
from shared.rules.model import BackupRecord, OperationRecord, Trigger
from shared.rules.naming import storage_account_ref
from shared.runtime import Runtime, get_runtime
from shared.settings.parse import ConfigError

LOCAL_SETTINGS = Path("local.settings.json")
REPORT_FILE = Path("apim-backup-report.html")


def load_local_settings(path: Path = LOCAL_SETTINGS) -> None:
    if not path.exists():
        return
    values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    for name, value in values.items():
        os.environ.setdefault(name, str(value))


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


def format_table(rows: Sequence[BackupRecord]) -> str:
    """The ledger as columns; a change backup is followed by what changed, indented."""
    header = ("SERVICE", "BACKUP", "STATUS", "TRIGGER", "CREATED (UTC)", "EXPIRES (UTC)", "SIZE")
    lines = [header] + [
        (
            r.service,
            r.backup_name,
            r.status.value,
            r.trigger.value,
            f"{r.created_at:%Y-%m-%d %H:%M}",
            f"{r.expires_at:%Y-%m-%d %H:%M}",
            _size(r.size_bytes),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        changes = rows[index - 1].changes if index else ()
        out.extend(f"    changed: {what}" for what in changes)
    return "\n".join(out)


def wait_for(
    runtime: Runtime, operation: OperationRecord, poll_seconds: float | None = None
) -> OperationRecord:
    """Follow an operation to its end, printing each change of state."""
    what = f"{operation.kind.value} {operation.backup_name} on {operation.service}"
    print(f"{what}: {operation.status.value}")
    while operation.is_running:
        progress = operations.refresh(runtime, operation)
        operation = progress.operation
        if operation.is_running:
            delay = poll_seconds if poll_seconds is not None else progress.retry_after
            print(f"  still running; next look in {delay:g}s", flush=True)
            time.sleep(delay)
    print(
        f"{operation.kind.value} {operation.backup_name}: {operation.status.value}"
        + (f" ({operation.error})" if operation.error else "")
    )
    print_drift(operation)
    return operation


def print_drift(operation: OperationRecord, file: TextIO | None = None) -> None:
    """A succeeded restore's drift: each setting the target lacks, and what to do."""
    out = file or sys.stdout
    if operation.drift_error:
        print(f"drift: {operation.drift_error}", file=out)
    if operation.drift is None:
        return
    if not operation.drift:
        print("drift: none; the target's settings match the backup's manifest", file=out)
        return
    print(f"drift: {len(operation.drift)} setting(s) differ from the source:", file=out)
    for item in operation.drift:
        print(f"  - {item['setting']}: source {item['source']}, target {item['target']}", file=out)
        print(f"    {item['action']}", file=out)


def write_report(runtime: Runtime, out: Path) -> Path:
    """Write the report to ``out`` (replacing it whole: a reader never sees half a page)."""
    page = report.html(runtime)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(out)
    return out.resolve()


def _exit_code(operation: OperationRecord) -> int:
    return 0 if operation.status.value == "Succeeded" or operation.is_running else 1


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _add_doctor(sub: Any) -> None:
    p = sub.add_parser(
        "doctor", help="check the deployment, service by service (read-only); 1 on a FAIL"
    )
    p.add_argument(
        "--storage-account-id",
        help="the backup account's resource ID: adds its firewall, versioning, soft delete "
        "and immutability policy (read through Resource Manager)",
    )
    p.add_argument(
        "--no-write",
        action="store_true",
        help="write no probe entity: the table write checks are skipped (WARN)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared", description="APIM backup operator CLI"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("backup", help="start a backup")
    p.add_argument("--service", help="service name or resource id (optional with one service)")
    p.add_argument("--wait", action="store_true", help="follow it to the end")
    p.add_argument("--poll-seconds", type=_positive, help=argparse.SUPPRESS)
    p = sub.add_parser("restore", help="restore a backup")
    p.add_argument("backup_name")
    p.add_argument("--target", help="target service (default: the backup's own)")
    p.add_argument("--dry-run", action="store_true", help="run the checks only")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--poll-seconds", type=_positive, help=argparse.SUPPRESS)
    p = sub.add_parser("status", help="an operation's state (asks APIM once if running)")
    p.add_argument("operation_id")
    p = sub.add_parser("list", help="the ledger as a table")
    p.add_argument("--service")
    p.add_argument("--status")
    p.add_argument("--all", action="store_true", help="include expired backups")
    p = sub.add_parser("show", help="one backup: its ledger row and settings manifest")
    p.add_argument("backup_name")
    sub.add_parser("housekeeping", help="settle running operations, then prune")
    p = sub.add_parser("prune", help="prune expired and old backups")
    p.add_argument("--dry-run", action="store_true")
    _add_doctor(sub)
    p = sub.add_parser("report", help="write the report: one self-contained HTML file")
    p.add_argument("--out", type=Path, default=REPORT_FILE, help=f"default: {REPORT_FILE}")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )

    try:
        load_local_settings()
        return _run(args, get_runtime())
    except errors.ProductError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2 if exc.status < 500 else 1
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:  # a malformed local.settings.json, mostly
        print(f"error: {LOCAL_SETTINGS}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except AzureError as exc:
        # The type only: an SDK message may quote a URL, and URLs may carry a SAS.
        print(f"error: Azure request failed: {type(exc).__name__}", file=sys.stderr)
        return 1


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def run_doctor(
    runtime: Runtime, storage_account_id: str | None, *, write_probes: bool = True
) -> int:
    """Print one line per check (OK, WARN or FAIL, and the fix); 1 when any failed."""
    if storage_account_id is not None:
        try:
            storage_account_ref(storage_account_id, runtime.settings.storage_account)
        except ValueError as exc:
            print(f"error: --storage-account-id: {exc}", file=sys.stderr)
            return 2
    findings = doctor.run(runtime, storage_account_id, write_probes=write_probes)
    for finding in findings:
        print(finding.line())
    failed = sum(f.level is rules_doctor.Level.FAIL for f in findings)
    warned = sum(f.level is rules_doctor.Level.WARN for f in findings)
    print(f"doctor: {len(findings)} checks, {failed} failed, {warned} warnings")
    return rules_doctor.exit_code(findings)


def _run(args: argparse.Namespace, runtime: Runtime) -> int:
    if args.command == "backup":
        started = backups.start_backup(runtime, args.service, Trigger.CLI)
        print(f"operation {started.operation.operation_id}: backup {started.backup.backup_name}")
        if args.wait:
            return _exit_code(wait_for(runtime, started.operation, args.poll_seconds))
        return 0
    if args.command == "restore":
        body = {"backupName": args.backup_name, "dryRun": args.dry_run}
        if args.target:
            body["targetService"] = args.target
        request = restores.RestoreRequest.from_body(body)
        if args.dry_run:
            report = restores.dry_run(runtime, request)
            _print_json(report)
            return 0 if report["wouldStart"] else 1
        operation = restores.start_restore(runtime, request, Trigger.CLI)
        what = f"restore of {operation.backup_name} into {operation.service}"
        print(f"operation {operation.operation_id}: {what}")
        if args.wait:
            return _exit_code(wait_for(runtime, operation, args.poll_seconds))
        return 0
    if args.command == "status":
        progress = operations.get_operation(runtime, args.operation_id)
        _print_json(progress.operation.to_api(""))
        # stdout stays one JSON document (it already holds the drift) for scripts and jq.
        print_drift(progress.operation, file=sys.stderr)
        return _exit_code(progress.operation)
    if args.command == "show":
        _print_json(backups.backup_details(runtime, args.backup_name))
        return 0
    if args.command == "list":
        rows = backups.list_backups(runtime, args.service, args.status, include_expired=args.all)
        print(format_table(rows))
        return 0
    if args.command == "housekeeping":
        print(housekeeping.run(runtime).summary())
        return 0
    if args.command == "doctor":
        return run_doctor(runtime, args.storage_account_id, write_probes=not args.no_write)
    if args.command == "prune":
        _print_json(housekeeping.prune_now(runtime, dry_run=args.dry_run))
        return 0
    if args.command == "report":
        try:
            print(write_report(runtime, args.out))
        except OSError as exc:
            print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    raise SystemExit(main())
