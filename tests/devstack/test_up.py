"""``make up`` (python -m devstack.up): starts, serves a real request, and stops cleanly.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group (make, Python,
Azurite's node, the emulator); a service manager sends SIGTERM to the main process only.
Either way every process it started must be gone afterwards, and its settings file too.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(
    r"The HTTP API is at (?P<url>http://127\.0\.0\.1:\d+/api)\s+\(host key: (?P<key>[^)]+)\)"
)


class Up:
    def __init__(self, settings_file: Path) -> None:
        self.settings_file = settings_file
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack.up",
                "--port",
                "0",
                "--settings-file",
                str(settings_file),
                "--operation-seconds",
                "0",
                "--housekeeping-seconds",
                "1",
                "--change-quiet-minutes",
                "0",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.output.append(line)
            found = pattern.search(line)
            if found:
                return found
        raise AssertionError(f"make up never printed {pattern.pattern!r}:\n{''.join(self.output)}")

    def rest(self) -> str:
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return "".join(self.output)

    def descendants(self) -> set[int]:
        """Every live process below ours (read from /proc, as ps would)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
        found: set[int] = set()
        todo = [self.process.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                found.add(child)
                todo.append(child)
        return found

    def kill_leftovers(self) -> None:
        """Cleanup if a test failed half-way: only our own process group."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def get(url: str, key: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"x-functions-key": key})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def post(url: str, key: str, body: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"x-functions-key": key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def change_a_product(values: dict[str, str]) -> None:
    """PUT a product of contoso-apim through the emulator, as the portal or a CLI would."""
    import ssl

    service = values["APIM_SERVICES"].split(",")[0]
    request = urllib.request.Request(
        f"{values['ARM_ENDPOINT']}{service}/products/gold?api-version=2024-05-01",
        data=json.dumps({"properties": {"displayName": "Gold"}}).encode(),
        method="PUT",
        headers={"Authorization": "Bearer local", "Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=values["REQUESTS_CA_BUNDLE"])
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        assert response.status in (200, 201)


@pytest.mark.stack
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_make_up_serves_and_stops_everything(tmp_path: Path, how: str) -> None:
    settings_file = tmp_path / "local.settings.json"
    up = Up(settings_file)
    try:
        ready = up.wait_for(READY)
        url, key = ready["url"], ready["key"]
        started = up.descendants()
        # Azurite (node) and the emulator (python) at least.
        assert len(started) >= 2, started

        # The settings file points at the running stack.
        values = json.loads(settings_file.read_text())["Values"]
        assert values["ARM_ENDPOINT"].startswith("https://127.0.0.1:")
        assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
        assert "BlobEndpoint=http://127.0.0.1:" in values["BACKUP_STORAGE"]

        # One real request with the printed key: health answers for the configured services.
        status, body = get(f"{url}/health", key)
        # Nothing backed up yet, and nothing late either: both services are pending.
        assert status == 200, body
        assert {(s["service"], s["rpo"]) for s in json.loads(body)["services"]} == {
            ("contoso-apim", "pending"),
            ("fabrikam-standby", "pending"),
        }
        assert get(f"{url}/health", "not-the-key")[0] == 401

        # A backup started over HTTP is settled by the housekeeping timer (fired through
        # the runtime), with nobody polling its status URL.
        status, body = post(f"{url}/backups", key, {"service": "contoso-apim"})
        assert status == 202, body
        name = json.loads(body)["backupName"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status, body = get(f"{url}/backups/{name}", key)
            if json.loads(body)["status"] != "Running":
                break
            time.sleep(0.5)
        assert json.loads(body)["status"] == "Succeeded", body
        assert f"curl -s -H 'x-functions-key: {key}' {url}/health" in up.rest()

        # A configuration change through the emulator's Resource Manager routes reaches the
        # Event Grid function as an event, and housekeeping starts a change backup.
        change_a_product(values)
        deadline = time.monotonic() + 30
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not found:
            listed = json.loads(get(f"{url}/backups", key)[1])["value"]
            found = [b for b in listed if b["trigger"] == "change"]
            time.sleep(0.5)
        assert found, up.rest()
        assert "products/gold write" in found[0]["changes"], found
        # Our own backups' events (two of them by now) started nothing more.
        assert len(found) == 1

        if how == "ctrl-c":
            os.killpg(up.process.pid, signal.SIGINT)
        else:
            up.process.send_signal(signal.SIGTERM)
        assert up.process.wait(timeout=30) == 0, up.rest()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(pid) for pid in started):
            time.sleep(0.1)
        assert [pid for pid in started if alive(pid)] == [], up.rest()
        assert not settings_file.exists()
        assert "Stopped" in up.rest()
    finally:
        up.kill_leftovers()
