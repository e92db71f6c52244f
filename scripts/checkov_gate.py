"""``make checkov``: checkov over all of infra/, failing on what checkov itself lets pass.

Checkov exits 0 when a file does not parse (the file is then simply not checked), so its
exit code means little here. This gate runs it with ``-o json`` and fails when:

- any file could not be parsed (``summary.parsing_errors`` or the list of them);
- any check failed (a finding must be fixed, or accepted below);
- a failed check is not accepted in ``.checkov.yaml`` for that very resource, with a
  one-line reason, or an accepted finding no longer occurs (so the list cannot rot).

Accepted findings are the ``skip-check`` entries of ``.checkov.yaml``, one per line:

    - CKV_AZURE_35  # [host-storage.bicep:storage, ...] the reason, on one line

(checkov's Bicep runner ignores inline skip comments, so the config file is the only
place to accept a finding; a bare ``checkov -d infra`` skips the same checks). Checkov
runs here without that list, and each failure is matched by check and resource, so an
accepted check still counts on every other resource. Prints the summary and every
accepted finding with its reason.

    python -m scripts.checkov_gate [path/to/checkov]      (``make checkov`` does this)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / ".checkov.yaml"
SCANNED = "infra"

_ENTRY = re.compile(
    r"^\s*-\s*(?P<id>CKV2?_[A-Z0-9_]+)\s*(?:#\s*\[(?P<where>[^\]]*)\]\s*(?P<reason>.*))?$"
)


@dataclass(frozen=True)
class Accepted:
    check_id: str
    where: str  # "<file name>:<resource symbol>"
    reason: str


def read_accepted(text: str) -> tuple[dict[tuple[str, str], Accepted], list[str]]:
    """The accepted findings (skip-check entries of the config), and what is wrong with them.

    One check may have several entries (other resources, other reasons).
    """
    accepted: dict[tuple[str, str], Accepted] = {}
    problems: list[str] = []
    in_list = False
    for line in text.splitlines():
        if re.match(r"^skip-check:\s*$", line):
            in_list = True
            continue
        if in_list and line and not line.startswith((" ", "-", "#")):
            in_list = False
        if not in_list or not line.strip() or line.strip().startswith("#"):
            continue
        match = _ENTRY.match(line)
        if match is None:
            problems.append(f"unreadable skip-check entry: {line.strip()!r}")
            continue
        where, reason = match["where"], (match["reason"] or "").strip()
        if where is None or not where.strip() or len(reason) < 15:
            problems.append(
                f"{match['id']}: accepted without '# [file:resource, ...] reason' on its line"
            )
            continue
        for name in (w.strip() for w in where.split(",")):
            if name:
                accepted[(match["id"], name)] = Accepted(match["id"], name, reason)
    return accepted, problems


def _where(check: dict[str, Any]) -> str:
    """``<file name>:<symbol>`` of a result (resource is ``<type>.<symbol>``)."""
    file_name = Path(str(check.get("file_path", ""))).name
    symbol = str(check.get("resource", "")).rsplit(".", 1)[-1]
    return f"{file_name}:{symbol}"


def evaluate(report: Any, accepted: dict[tuple[str, str], Accepted]) -> tuple[list[str], list[str]]:
    """(problems, lines to print) from checkov's JSON report (one block or a list)."""
    blocks = report if isinstance(report, list) else [report]
    problems: list[str] = []
    lines: list[str] = []
    used: set[tuple[str, str]] = set()
    totals = {"passed": 0, "failed": 0, "parsing_errors": 0}
    for block in blocks:
        summary = block.get("summary", {})
        for total in totals:
            totals[total] += int(summary.get(total, 0))
        results = block.get("results", {})
        for path in results.get("parsing_errors", []):
            problems.append(f"checkov could not parse {path}")
        for check in results.get("failed_checks", []):
            key = (str(check["check_id"]), _where(check))
            entry = accepted.get(key)
            if entry is None:
                problems.append(f"{key[0]} failed on {key[1]}: {check.get('check_name')}")
                continue
            if key not in used:
                lines.append(f"  accepted {key[0]} on {key[1]}: {entry.reason}")
            used.add(key)
    if totals["parsing_errors"] and not any("parse" in p for p in problems):
        problems.append(f"checkov reports {totals['parsing_errors']} parsing error(s)")
    for check_id, where in sorted(set(accepted) - used):
        problems.append(f"{check_id} on {where} is accepted in .checkov.yaml but does not occur")
    unaccepted = totals["failed"] - sum(
        1
        for block in blocks
        for check in block.get("results", {}).get("failed_checks", [])
        if (str(check["check_id"]), _where(check)) in accepted
    )
    lines.sort()
    lines.insert(
        0,
        f"checkov: {totals['passed']} passed, {unaccepted} failed, "
        f"{totals['failed'] - unaccepted} accepted findings ({len(used)} distinct), "
        f"{totals['parsing_errors']} parse errors",
    )
    return problems, lines


def main(argv: list[str]) -> int:
    # Resolved before the run changes directory.
    given = Path(argv[1]) if len(argv) > 1 else REPO / ".venv-checkov" / "bin" / "checkov"
    checkov = str(given.resolve())
    accepted, problems = read_accepted(CONFIG.read_text(encoding="utf-8"))
    # From an empty directory, so that checkov does not load .checkov.yaml by itself: its
    # skip-check list would hide the accepted findings, which are checked here instead.
    with tempfile.TemporaryDirectory() as empty:
        run = subprocess.run(
            [checkov, "-d", str(REPO / SCANNED), "--skip-download", "-o", "json"],
            cwd=empty,
            capture_output=True,
            text=True,
            check=False,
        )
    try:
        report = json.loads(run.stdout)
    except ValueError:
        print(run.stderr[-2000:], file=sys.stderr)
        print(f"checkov gave no JSON report (exit {run.returncode})", file=sys.stderr)
        return 1
    found, lines = evaluate(report, accepted)
    problems += found
    print("\n".join(lines))
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
