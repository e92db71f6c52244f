"""Debian's headless Chromium, for the HTML report: a screenshot, the DOM, and every
console message the page produced.

Chromium is a requirement of the test suite, not an option: `.ci/run` installs it, and
a test that needs it fails (never skips) when it is missing, saying how to install it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL = "apt-get update && apt-get install -y chromium"
# With --enable-logging=stderr, each console message (console.*, an uncaught exception,
# a refused load) is one line: [pid:tid:time:INFO:CONSOLE:line] "message", source: url (n)
_CONSOLE = re.compile(r":CONSOLE[:(\]]")


@dataclass(frozen=True)
class Page:
    screenshot: bytes
    dom: str
    console: list[str]  # every console line, from both runs


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            f"Debian's chromium is not installed (no `chromium` on PATH): run `{INSTALL}` "
            "(as root); .ci/run installs it before `make test`.",
            pytrace=False,
        )
    return found


def _run(page: Path, workdir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        # No name resolves: the page must need nothing from a network.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={workdir / 'profile'}",
        "--window-size=1280,2000",
        "--enable-logging=stderr",
        "--v=0",
        *flags,
        page.resolve().as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def open_page(page: Path, workdir: Path) -> Page:
    """Load ``page`` twice: once for a screenshot, once for the DOM after it ran."""
    png = workdir / "screenshot.png"
    shot = _run(page, workdir, f"--screenshot={png}")
    assert shot.returncode == 0, shot.stderr[-2000:]
    dom = _run(page, workdir, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [
        line for run in (shot, dom) for line in run.stderr.splitlines() if _CONSOLE.search(line)
    ]
    return Page(png.read_bytes() if png.exists() else b"", dom.stdout, console)
