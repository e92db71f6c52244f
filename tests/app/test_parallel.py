"""shared.parallel and shared.lazy: bounded concurrency, no lost work, one client per process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shared.lazy import cached_property
from shared.parallel import run_each

ROOT = Path(__file__).resolve().parents[2]


def test_run_each_reaches_its_limit_and_never_exceeds_it():
    lock = threading.Lock()
    active, peak = 0, 0
    three_at_once = threading.Barrier(3, timeout=5)

    def work(item: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        if item < 3:
            three_at_once.wait()  # only passes if three run at the same time
        time.sleep(0.01)
        with lock:
            active -= 1
        return item * 10

    assert run_each(list(range(12)), work, 3) == [i * 10 for i in range(12)]
    assert peak == 3


def test_one_failure_is_raised_only_after_every_other_item_ran():
    done: list[int] = []

    def work(item: int) -> None:
        if item == 0:
            raise RuntimeError("boom")
        time.sleep(0.02)
        done.append(item)

    with pytest.raises(RuntimeError, match="boom"):
        run_each(list(range(6)), work, 4)
    assert sorted(done) == [1, 2, 3, 4, 5]
    assert [t for t in threading.enumerate() if t.name.startswith("work")] == []


def test_cached_property_makes_one_value_under_concurrent_first_reads():
    made: list[object] = []
    start = threading.Barrier(8, timeout=5)

    class Holder:
        @cached_property
        def client(self) -> object:
            time.sleep(0.05)  # a slow SDK client: every thread arrives meanwhile
            made.append(object())
            return made[-1]

    holder = Holder()
    seen: list[object] = []

    def read() -> None:
        start.wait()
        seen.append(holder.client)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1 and all(s is made[0] for s in seen)


def test_importing_the_function_app_loads_no_azure_sdk():
    """A cold start imports azure.functions and the product, not the storage, table,
    identity or management SDKs (nor azure.core): those load when first needed."""
    code = (
        "import sys, function_app; "
        "print(sorted(m for m in sys.modules if m.split('.')[:2] != ['azure', 'functions']"
        " and (m == 'azure.core' or m.startswith(('azure.core.', 'azure.data', 'azure.storage',"
        " 'azure.identity', 'azure.mgmt')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("max_parallel", [1, 4])
def test_every_item_is_tried_whatever_the_limit(max_parallel: int):
    """The contract holds at MAX_PARALLEL=1 too: a failure is raised after every item ran."""
    tried: list[int] = []

    def work(item: int) -> int:
        tried.append(item)
        if item in (0, 3):
            raise RuntimeError(f"boom {item}")
        return item

    with pytest.raises(RuntimeError, match="boom 0"):
        run_each(list(range(6)), work, max_parallel)
    assert sorted(tried) == [0, 1, 2, 3, 4, 5]
