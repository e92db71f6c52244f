"""Retention at its edges (docs/ledger.md, "Retention"): a backup exactly RETENTION_DAYS
old is not older than that; an already Pruned row says when, if the ledger knows."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from shared.rules.model import Status
from shared.rules.retention import decide
from tests.rules.test_retention import NOW, record


def test_a_backup_exactly_retention_days_old_is_kept_a_second_more_goes() -> None:
    at = record("contoso-apim", timedelta(days=7))
    assert decide(at, NOW, 7, 0, set()) == (False, "within retention (7 days)")
    over = record("contoso-apim", timedelta(days=7, seconds=1))
    assert decide(over, NOW, 7, 0, set()) == (True, "older than 7 days")
    failed = record("contoso-apim", timedelta(days=7), Status.FAILED)
    assert decide(failed, NOW, 7, 0, set()) == (False, "failed; kept until 7 days old")


def test_an_already_pruned_row_says_when_if_known() -> None:
    pruned = record("contoso-apim", timedelta(days=50), Status.PRUNED)
    assert decide(pruned, NOW, 30, 1, set()) == (False, "already pruned 2026-09-22")
    unknown = replace(pruned, pruned_at=None)
    assert decide(unknown, NOW, 30, 1, set()) == (False, "already pruned")
