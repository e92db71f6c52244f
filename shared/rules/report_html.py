"""The report as one self-contained HTML page: no script, no font, no stylesheet from
anywhere; the charts are SVG drawn here. Every value from a row goes through
``html.escape`` (a service or a certificate subject is text, never markup). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from shared.rules.model import utc
from shared.rules.report import (
    FAILURE,
    SUCCESS,
    BackupPoint,
    Drill,
    ReportView,
    ServiceView,
)

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#1b1b1b;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
.meta{color:#555;font-size:13px}
section{border:1px solid #ddd;border-radius:6px;padding:12px 16px;margin:16px 0}
.ok{color:#107c10}.bad{color:#c50f1f}.warn{color:#8a5300}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px 3px 0;text-align:left}
.charts{display:flex;gap:24px;flex-wrap:wrap}.charts strong{display:block;font-size:13px}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.sw{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
"""
_COLOURS = {SUCCESS: "#107c10", FAILURE: "#c50f1f"}
_EMPTY = "#e1e1e1"
_STATUS_COLOURS = {"Succeeded": "#107c10", "Failed": "#c50f1f"}


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else _e(f"{utc(moment):%Y-%m-%d %H:%M}Z")


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


def render(view: ReportView) -> str:
    body = "\n".join(_service(s, view.rpo_hours) for s in view.services) or (
        "<p>No service is configured (APIM_SERVICES).</p>"
    )
    healthy = sum(1 for s in view.services if s.healthy)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>APIM backup report</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>APIM backup report</h1>"
        f'<p class="meta">Generated {_when(view.generated_at)}; RPO {_e(f"{view.rpo_hours:g}")}'
        f" hours; certificates flagged within {_e(view.cert_warning_days)} days. "
        f"{healthy} of {len(view.services)} service(s) within RPO and owing nothing.</p>"
        f"{body}</body></html>\n"
    )


def _service(view: ServiceView, rpo_hours: float) -> str:
    return (
        f'<section data-service="{_e(view.service)}"><h2>{_e(view.service)}</h2>'
        f"{_rpo(view, rpo_hours)}"
        f"<h3>Last {len(view.nights)} nights (UTC)</h3>{_grid(view)}"
        f'<h3>Backups</h3><div class="charts">{_charts(view.backups)}</div>'
        f"<h3>Last restore (drill)</h3>{_drill(view.last_restore)}"
        f"<h3>Open debt</h3>{_debt(view)}"
        f"<h3>Certificates</h3>{_certificates(view)}</section>"
    )


def _rpo(view: ServiceView, rpo_hours: float) -> str:
    if view.age_hours is None:
        return '<p class="bad">No restorable backup.</p>'
    css, verdict = ("ok", "within") if view.within_rpo else ("bad", "older than")
    return (
        f'<p class="{css}">Newest restorable backup {_e(view.newest_backup)}: '
        f"{_e(f'{view.age_hours:.1f}')} hours old, {verdict} the RPO of "
        f"{_e(f'{rpo_hours:g}')} hours.</p>"
    )


def _grid(view: ServiceView) -> str:
    cell, gap = 18, 4
    width = len(view.nights) * (cell + gap)
    rects = "".join(
        f'<rect x="{i * (cell + gap)}" y="0" width="{cell}" height="{cell}" rx="3" '
        f'fill="{_COLOURS.get(n.state, _EMPTY)}" data-state="{_e(n.state)}">'
        f"<title>{_e(n.day.isoformat())}: {_e(n.state)} ({n.backups} backup(s))</title></rect>"
        for i, n in enumerate(view.nights)
    )
    first = view.nights[0].day.isoformat() if view.nights else ""
    last = view.nights[-1].day.isoformat() if view.nights else ""
    legend = "".join(
        f'<span><i class="sw" style="background:{colour}"></i>{label}</span>'
        for label, colour in (
            ("success", _COLOURS[SUCCESS]),
            ("failure", _COLOURS[FAILURE]),
            ("none", _EMPTY),
        )
    )
    return (
        f'<svg class="nights" role="img" width="{width}" height="{cell + 16}" '
        f'viewBox="0 0 {width} {cell + 16}" xmlns="http://www.w3.org/2000/svg">{rects}'
        f'<text x="0" y="{cell + 14}" font-size="11">{_e(first)}</text>'
        f'<text x="{width - gap}" y="{cell + 14}" font-size="11" text-anchor="end">'
        f"{_e(last)}</text></svg>"
        f'<div class="legend">{legend}</div>'
    )


def _charts(points: Sequence[BackupPoint]) -> str:
    if not points:
        return "<p>No backup has ended in the ledger's window.</p>"
    durations = [(p, p.duration_seconds / 60) for p in points]
    sizes = [(p, p.size_bytes / 2**20) for p in points if p.size_bytes is not None]
    return _chart("Duration (minutes)", durations) + _chart("Size (MiB)", sizes)


def _chart(title: str, values: Sequence[tuple[BackupPoint, float]]) -> str:
    w, h, pad = 540, 180, 60
    if not values:
        return f"<div><strong>{_e(title)}</strong><p>No values.</p></div>"
    top = max(v for _, v in values) or 1.0
    first = values[0][0].created_at.timestamp()
    span = (values[-1][0].created_at.timestamp() - first) or 1.0

    def x(p: BackupPoint) -> float:
        return pad + (p.created_at.timestamp() - first) / span * (w - 2 * pad)

    def y(v: float) -> float:
        return h - pad + 10 - v / top * (h - pad - 10)

    line = " ".join(f"{x(p):.1f},{y(v):.1f}" for p, v in values)
    dots = "".join(
        f'<circle cx="{x(p):.1f}" cy="{y(v):.1f}" r="3.5" '
        f'fill="{_STATUS_COLOURS.get(p.status, "#0f6cbd")}">'
        f"<title>{_e(p.backup_name)} ({_e(p.status)}): {_e(f'{v:.2f}')}</title></circle>"
        for p, v in values
    )
    return (
        f"<div><strong>{_e(title)}</strong>"
        f'<svg class="chart" role="img" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'xmlns="http://www.w3.org/2000/svg">'
        f'<line x1="{pad}" y1="{h - pad + 10}" x2="{w - pad}" y2="{h - pad + 10}" stroke="#888"/>'
        f'<line x1="{pad}" y1="10" x2="{pad}" y2="{h - pad + 10}" stroke="#888"/>'
        f'<text x="{pad - 4}" y="14" font-size="11" text-anchor="end">{_e(f"{top:.3g}")}</text>'
        f'<text x="{pad - 4}" y="{h - pad + 10}" font-size="11" text-anchor="end">0</text>'
        f'<text x="{pad}" y="{h - 8}" font-size="11">{_when(values[0][0].created_at)}</text>'
        f'<text x="{w - pad}" y="{h - 8}" font-size="11" text-anchor="end">'
        f"{_when(values[-1][0].created_at)}</text>"
        f'<polyline points="{line}" fill="none" stroke="#0f6cbd" stroke-width="1.5"/>'
        f"{dots}</svg></div>"
    )


def _drill(drill: Drill | None) -> str:
    if drill is None:
        return "<p>No restore of this service's backups is recorded.</p>"
    took = "still running" if drill.duration_seconds is None else f"{drill.duration_seconds:.0f} s"
    drift = "not computed" if drill.drift_count is None else str(drill.drift_count)
    css = "ok" if drill.status == "Succeeded" else ("bad" if drill.status == "Failed" else "warn")
    rows = [
        ("Backup", _e(drill.backup_name)),
        ("Target", _e(drill.target)),
        ("Trigger", _e(drill.trigger)),
        ("Started", _when(drill.started_at)),
        ("Duration", _e(took)),
        ("Outcome", f'<span class="{css}">{_e(drill.status)}</span>'),
        ("Drift (settings that differ)", _e(drift)),
    ]
    if drill.error:
        rows.append(("Error", _e(drill.error)))
    return "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _debt(view: ServiceView) -> str:
    debt = view.debt
    if debt is None:
        return '<p class="ok">None: the schedule owes nothing.</p>'
    return (
        f'<p class="bad">A scheduled backup is owed since {_when(debt.since)}; '
        f"{_e(debt.attempts)} attempt(s), next at {_when(debt.next_attempt_at)}; "
        f"last error: {_e(debt.last_error)}</p>"
    )


def _certificates(view: ServiceView) -> str:
    if not view.certificates:
        return "<p>No certificate in the newest manifest.</p>"
    rows = "".join(
        f'<tr class="{"warn" if c.warning else ""}"><td>{_e(c.host_name or "(CA)")}</td>'
        f"<td>{_e(c.subject)}</td><td>{_e(c.thumbprint)}</td><td>{_when(c.expires_at)}</td>"
        f"<td>{_e(c.days_left)}</td></tr>"
        for c in view.certificates
    )
    return (
        "<table><tr><th>Host name</th><th>Subject</th><th>Thumbprint</th>"
        f"<th>Expires</th><th>Days left</th></tr>{rows}</table>"
    )
