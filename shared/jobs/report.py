"""``python -m shared report``: the report's reads. The ledger's last 30 days of each
service (one RowKey range each), the operations table's restores, the debts; the views
are :mod:`shared.rules.report`, the page :mod:`shared.rules.report_html`."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from shared.jobs import debts
from shared.parallel import run_each
from shared.rules import report
from shared.rules.model import BackupRecord
from shared.rules.report_html import render

if TYPE_CHECKING:
    from shared.runtime import Runtime

# The grid's nights, and no less than a backup's lifetime (what "restorable" can reach).
WINDOW = timedelta(days=report.NIGHTS)


def build(runtime: Runtime) -> report.ReportView:
    now = runtime.clock()
    settings = runtime.settings
    services = settings.apim_services

    def rows(key: str) -> list[BackupRecord]:
        return list(runtime.ledger.since(key, now - WINDOW))

    recent = run_each(services, lambda s: rows(s.key), settings.max_parallel, "report")
    restores = list(runtime.operations.restores())
    return report.build(
        now,
        settings.rpo_hours,
        settings.cert_warning_days,
        {s.key: r for s, r in zip(services, recent, strict=True)},
        restores,
        debts.owed(runtime),
    )


def html(runtime: Runtime) -> str:
    """The report as one self-contained HTML page."""
    return render(build(runtime))
