"""The checkov gate's decisions (scripts/checkov_gate.py), on hand-made checkov reports.

``make checkov`` runs the real checkov; these show the gate fails where checkov itself
would pass: a file it could not parse, a finding nobody accepted, an accepted finding
without a reason, or one that no longer occurs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scripts.checkov_gate import CONFIG, evaluate, read_accepted

CONFIG_TEXT = """\
skip-download: true
skip-check:
  # a comment line
  - CKV_AZURE_35  # [host-storage.bicep:storage] the host storage must stay reachable by the app
  - CKV_AZURE_44  # [backup-storage.bicep:createdAccount, other.bicep:x] false finding: conditional resource
compact: true
"""


def failed(check_id: str, file: str, symbol: str) -> dict[str, Any]:
    return {
        "check_id": check_id,
        "check_name": "a check",
        "file_path": f"/app/{file}",
        "resource": f"Microsoft.Storage/storageAccounts.{symbol}",
    }


def report(failures: list[dict[str, Any]], parsing_errors: list[str] | None = None) -> dict:
    errors = parsing_errors or []
    return {
        "check_type": "bicep",
        "results": {"failed_checks": failures, "parsing_errors": errors},
        "summary": {"passed": 3, "failed": len(failures), "parsing_errors": len(errors)},
    }


def test_accepted_findings_are_read_per_resource_with_their_reason():
    accepted, problems = read_accepted(CONFIG_TEXT)
    assert problems == []
    assert set(accepted) == {
        ("CKV_AZURE_35", "host-storage.bicep:storage"),
        ("CKV_AZURE_44", "backup-storage.bicep:createdAccount"),
        ("CKV_AZURE_44", "other.bicep:x"),
    }
    assert accepted[("CKV_AZURE_35", "host-storage.bicep:storage")].reason.startswith("the host")


def test_an_entry_without_resources_or_reason_is_refused():
    _, problems = read_accepted("skip-check:\n  - CKV_AZURE_1\n  - CKV_AZURE_2  # [a.bicep:b] ok\n")
    assert len(problems) == 2
    assert all("without" in p for p in problems)


def test_all_accepted_and_nothing_else_passes():
    accepted, _ = read_accepted(CONFIG_TEXT)
    problems, lines = evaluate(
        report(
            [
                failed("CKV_AZURE_35", "host-storage.bicep", "storage"),
                failed("CKV_AZURE_44", "backup-storage.bicep", "createdAccount"),
                failed("CKV_AZURE_44", "other.bicep", "x"),
            ]
        ),
        accepted,
    )
    assert problems == []
    assert lines[0] == (
        "checkov: 3 passed, 0 failed, 3 accepted findings (3 distinct), 0 parse errors"
    )
    assert any("CKV_AZURE_35 on host-storage.bicep:storage: the host" in line for line in lines)


def test_a_parse_error_fails_even_though_checkov_exits_zero():
    accepted, _ = read_accepted(CONFIG_TEXT)
    findings = [
        failed("CKV_AZURE_35", "host-storage.bicep", "storage"),
        failed("CKV_AZURE_44", "backup-storage.bicep", "createdAccount"),
        failed("CKV_AZURE_44", "other.bicep", "x"),
    ]
    problems, _ = evaluate(report(findings, ["/infra/main.bicep"]), accepted)
    assert problems == ["checkov could not parse /infra/main.bicep"]
    # Only the count in the summary (no list): still a failure.
    bare = report(findings)
    bare["summary"]["parsing_errors"] = 1
    problems, _ = evaluate(bare, accepted)
    assert problems == ["checkov reports 1 parsing error(s)"]


def test_an_accepted_check_still_fails_on_another_resource():
    accepted, _ = read_accepted(CONFIG_TEXT)
    problems, _ = evaluate(
        report(
            [
                failed("CKV_AZURE_35", "host-storage.bicep", "storage"),
                failed("CKV_AZURE_35", "backup-storage.bicep", "createdAccount"),
                failed("CKV_AZURE_44", "backup-storage.bicep", "createdAccount"),
                failed("CKV_AZURE_44", "other.bicep", "x"),
            ]
        ),
        accepted,
    )
    assert problems == ["CKV_AZURE_35 failed on backup-storage.bicep:createdAccount: a check"]


def test_an_accepted_finding_that_no_longer_occurs_fails():
    accepted, _ = read_accepted(CONFIG_TEXT)
    problems, _ = evaluate(
        [report([failed("CKV_AZURE_35", "host-storage.bicep", "storage")]), report([])],
        accepted,
    )
    assert problems == [
        "CKV_AZURE_44 on backup-storage.bicep:createdAccount is accepted in .checkov.yaml "
        "but does not occur",
        "CKV_AZURE_44 on other.bicep:x is accepted in .checkov.yaml but does not occur",
    ]


def test_the_projects_config_is_well_formed():
    accepted, problems = read_accepted(CONFIG.read_text(encoding="utf-8"))
    assert problems == []
    assert accepted
    for (check_id, where), entry in accepted.items():
        assert Path(where.split(":")[0]).suffix == ".bicep", (check_id, where)
        assert len(entry.reason) >= 30, (check_id, entry.reason)
