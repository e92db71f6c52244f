"""API_AUTH=entra as the runtime registers it: every HTTP function anonymous at the
Functions level (App Service authentication stands in front), the timers unchanged.

Its own module: the runtime keeps one app per process, and the worker of test_worker.py
is stopped when that module ends.
"""

from __future__ import annotations

import pytest

from devstack.worker import Worker


def test_entra_mode_registers_every_http_function_anonymous(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The level is read from the environment when the worker imports function_app.py.
    monkeypatch.setenv("API_AUTH", "entra")
    with Worker() as worker:
        functions = worker.functions
    levels = {
        name: f.trigger["authLevel"]
        for name, f in functions.items()
        if f.trigger["type"] == "httpTrigger"
    }
    assert len(levels) == 7 and set(levels.values()) == {"ANONYMOUS"}, levels
    timers = [f for f in functions.values() if f.trigger["type"] == "timerTrigger"]
    assert len(timers) == 3
