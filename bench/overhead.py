"""The product's own overhead, beside its baseline: one table (``make bench``).

    python -m bench.overhead [--only idle,health,history,fleet,cold,prune] [--product DIR]

Starts its own local stack (Azurite + the APIM emulator, Resource Manager answering in
200 ms a request) and measures, against the real product code:

- ``idle``/``health``: the storage requests of an idle housekeeping tick (nothing
  running, nothing due) and of ``GET /api/health``, with 0, 3,000 and 30,000 rows of
  ``Pruned`` history in the ledger (counted at the transport, retries included), and
  the tick's peak Python memory (tracemalloc);
- ``history``: the daily pass deleting 3,000 rows past LEDGER_HISTORY_DAYS;
- ``fleet``: one scheduled start, the scheduled tick over 50 services, and
  housekeeping with those 50 backups running;
- ``cold``: ``import function_app`` in fresh interpreters against a bare
  ``import azure.functions`` (median of interleaved runs), its bytecode cached or
  compiled from source, and the core modules a first trigger run imports besides;
- ``prune``: the batched pruning pass against one request per blob and row.

``--product DIR`` measures another checkout's ``shared/`` and ``function_app.py``
(e.g. ``git archive <commit> | tar -x -C DIR``) with this benchmark: that is how the
baseline column was measured. Figures only: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devstack.azurite import DEV_ACCOUNT
from devstack.counting import count_requests
from devstack.stack import DEFAULT_SEED, LocalStack

ROOT = Path(__file__).resolve().parent.parent
HISTORY_SIZES = (0, 3_000, 30_000)
FLEET = 50
ARM_LATENCY = 0.2  # seconds per Resource Manager request, as the issue measured
COLD_RUNS = 15
# The core modules the triggers import on their first run (function_app.py).
CORE_MODULES = (
    "shared.jobs.backups",
    "shared.jobs.restores",
    "shared.jobs.housekeeping",
    "shared.jobs.operations",
    "shared.jobs.schedule",
    "shared.jobs.health",
)
PRUNE_SIZE = 1_000
DELETE_ROWS = 3_000

# Measured on main (f659d90) with this script: `python -m bench.overhead --product DIR`
# after `git archive f659d90 | tar -x -C DIR` (and .venv linked in). Nothing else in
# the machine was idle, so timings carry noise of a few percent; counts are exact.
BASELINE: dict[str, str] = {
    "idle": "6 / 9 / 36",
    "memory": "117 / 12636 / 74903",
    "health": "3 / 5 / 33",
    "one": "0.73",
    "tick": "35.60 (49.0x; 50 started); 3 ARM + 6 storage",
    "running": "10.32; 50 + 56",
    "cold": "2.50x (255 / 102 ms)",
    "cold_source": "2.82x (234 / 83 ms)",
    # Main f659d90 imported all of it (and the SDKs) at load: its cold_source figure.
    "cold_first_run": "2.82x (234 / 83 ms)",
}


@dataclass
class Row:
    figure: str
    value: str
    baseline: str
    command: str


def _command(only: str) -> str:
    return f"python -m bench.overhead --only {only}"


# ------------------------------------------------------------------------ the product


class Product:
    """The product's modules, from this tree or from ``--product DIR``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if directory != ROOT:
            sys.path.insert(0, str(directory))
        for name in [m for m in sys.modules if m == "shared" or m.startswith("shared.")]:
            del sys.modules[name]
        self.runtime_mod = importlib.import_module("shared.runtime")
        self.settings_mod = importlib.import_module("shared.settings")
        self.model = importlib.import_module("shared.rules.model")
        self.naming = importlib.import_module("shared.rules.naming")
        self.backups = importlib.import_module("shared.jobs.backups")
        self.housekeeping = importlib.import_module("shared.jobs.housekeeping")
        self.health = importlib.import_module("shared.jobs.health")
        self.schedule = importlib.import_module("shared.jobs.schedule")
        loaded = Path(self.runtime_mod.__file__ or "").resolve()
        assert loaded.is_relative_to(directory.resolve()), f"product loaded from {loaded}"

    def runtime(self, env: dict[str, str]) -> Any:
        return self.runtime_mod.Runtime(self.settings_mod.Settings.from_env(env))


def _env(stack: LocalStack, services: Sequence[str], **extra: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    env = stack.product_env()
    env.pop("REQUESTS_CA_BUNDLE", None)  # set for the whole process in main()
    return {
        **env,
        "APIM_SERVICES": ",".join(stack.service_id(s) for s in services),
        "RESTORE_TARGETS": ",".join(stack.service_id(s) for s in services),
        "LEDGER_TABLE": f"bench{suffix}",
        "OPERATIONS_TABLE": f"benchops{suffix}",
        "BACKUP_CONTAINER": f"bench-{suffix}",
        **extra,
    }


def _record(product: Product, service: str, created: datetime, status: str, container: str) -> Any:
    model = product.model
    name = product.naming.backup_name(service, created)
    return model.BackupRecord(
        service=service,
        backup_name=name,
        service_id=f"/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-apim"
        f"/providers/Microsoft.ApiManagement/service/{service}",
        storage_account=DEV_ACCOUNT,
        container=container,
        status=model.Status(status),
        trigger=model.Trigger.SCHEDULE,
        created_at=created,
        sku="Developer",
        completed_at=created + timedelta(minutes=8),
        size_bytes=16,
        pruned_at=created + timedelta(days=30) if status == "Pruned" else None,
    )


def seed_history(
    product: Product, stack: LocalStack, env: dict[str, str], services: Sequence[str], rows: int
) -> None:
    """One live backup per service (an hour old, its blob present) and ``rows`` Pruned
    rows spread evenly from 31 to 390 days back: history that LEDGER_HISTORY_DAYS keeps."""
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient

    now = datetime.now(UTC).replace(microsecond=0)
    container_name = env["BACKUP_CONTAINER"]
    table = TableClient.from_connection_string(
        stack.connection_string, table_name=env["LEDGER_TABLE"]
    )
    container = ContainerClient.from_connection_string(
        stack.connection_string, container_name=container_name
    )
    table.create_table()
    container.create_container()
    for service in services:
        live = _record(product, service, now - timedelta(hours=1), "Succeeded", container_name)
        table.create_entity(live.to_entity())
        container.upload_blob(live.blob_name, b"apim-backup-data")
    span = timedelta(days=359).total_seconds()
    per_service = rows // len(services)
    for service in services:
        batch: list[Any] = []
        for i in range(per_service):
            created = now - timedelta(days=31, seconds=int(span * i / max(per_service, 1)))
            record = _record(product, service, created, "Pruned", container_name)
            batch.append(("create", record.to_entity()))
            if len(batch) == 100:
                table.submit_transaction(batch)
                batch = []
        if batch:
            table.submit_transaction(batch)
    table.close()
    container.close()


def measure_deletion(product: Product, stack: LocalStack) -> list[Row]:
    """The daily history pass deleting DELETE_ROWS Pruned rows older than
    LEDGER_HISTORY_DAYS (2 services), beside the same number of young rows it keeps."""
    from azure.data.tables import TableClient

    services = ("contoso-apim", "fabrikam-apim")
    env = _env(stack, services)
    seed_history(product, stack, env, services, DELETE_ROWS)  # 31..390 days: kept
    runtime = product.runtime(env)
    runtime.ledger, runtime.operations  # noqa: B018 - tables made before counting
    table = TableClient.from_connection_string(
        stack.connection_string, table_name=env["LEDGER_TABLE"]
    )
    now = datetime.now(UTC).replace(microsecond=0)
    for service in services:
        rows = [
            _record(product, service, now - timedelta(days=401, minutes=i), "Pruned", "x")
            for i in range(DELETE_ROWS // len(services))
        ]
        for start in range(0, len(rows), 100):
            table.submit_transaction([("create", r.to_entity()) for r in rows[start : start + 100]])
    history = importlib.import_module("shared.jobs.history")
    with count_requests() as sent:
        started = time.perf_counter()
        result = history.delete_old_rows(runtime, force=True)
        seconds = time.perf_counter() - started
    left = sum(1 for _ in table.list_entities())
    table.close()
    ok = "" if len(result.deleted) == DELETE_ROWS and left == DELETE_ROWS + 2 else " (WRONG)"
    return [
        Row(
            f"daily history pass: {DELETE_ROWS:,} rows past LEDGER_HISTORY_DAYS deleted, "
            f"{DELETE_ROWS:,} younger kept: requests; s",
            f"{sent.total}; {seconds:.2f}{ok}",
            "no deletion: history kept forever",
            _command("history"),
        )
    ]


def measure_history(product: Product, stack: LocalStack) -> tuple[list[Row], list[Row]]:
    services = ("contoso-apim", "fabrikam-apim")
    idle: list[str] = []
    health: list[str] = []
    memory: list[str] = []
    for rows in HISTORY_SIZES:
        env = _env(stack, services)
        seed_history(product, stack, env, services, rows)
        runtime = product.runtime(env)
        product.housekeeping.run(runtime)  # warm: tables ensured, the day's history pass done
        gc.collect()
        tracemalloc.start()
        with count_requests() as sent:
            product.housekeeping.run(runtime)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        idle.append(str(sent.total))
        memory.append(f"{peak / 1024:.0f}")
        with count_requests() as sent:
            product.health.report(runtime)
        health.append(str(sent.total))
    sizes = " / ".join(f"{n:,}" for n in HISTORY_SIZES)
    return (
        [
            Row(
                f"idle housekeeping tick, requests at {sizes} history rows",
                " / ".join(idle),
                BASELINE.get("idle", "?"),
                _command("idle"),
            ),
            Row(
                f"idle housekeeping tick, peak KiB (tracemalloc) at {sizes}",
                " / ".join(memory),
                BASELINE.get("memory", "?"),
                _command("idle"),
            ),
        ],
        [
            Row(
                f"GET /api/health (2 services), requests at {sizes} history rows",
                " / ".join(health),
                BASELINE.get("health", "?"),
                _command("health"),
            )
        ],
    )


# ------------------------------------------------------------------------------ fleet


def fleet_seed(count: int) -> dict[str, Any]:
    """The default seed's services plus ``count`` Developer services named bench-NN-apim."""
    seed: dict[str, Any] = json.loads(DEFAULT_SEED.read_text())
    template = next(s for s in seed["services"] if s["name"] == "contoso-apim")
    for i in range(count):
        service = copy.deepcopy(template)
        service["name"] = f"bench{i:02d}-apim"
        service["properties"]["hostnameConfigurations"] = []
        seed["services"].append(service)
    return seed


def measure_fleet(product: Product, stack: LocalStack) -> list[Row]:
    names = [f"bench{i:02d}-apim" for i in range(FLEET)]
    spare = (f"bench{FLEET:02d}-apim", f"bench{FLEET + 1:02d}-apim")
    control = stack.control
    control.reset(fleet_seed(FLEET + 2))
    control.set_duration(0)
    env = _env(stack, [*names, *spare])
    runtime = product.runtime(env)
    trigger = product.model.Trigger.SCHEDULE
    control.set_latency(ARM_LATENCY)
    try:
        product.backups.start_backup(runtime, spare[0], trigger)  # warm: clients, TLS, tables
        started = time.perf_counter()
        product.backups.start_backup(runtime, spare[1], trigger)
        one = time.perf_counter() - started
        product.housekeeping.run(runtime)  # settles the two: 50 running below, no more
        control.set_duration(3600)  # the fleet's backups stay running
        sub_env = {**env, "APIM_SERVICES": ",".join(stack.service_id(s) for s in names)}
        fleet = product.runtime(sub_env)
        fleet.__dict__.update(
            {k: v for k, v in runtime.__dict__.items() if k not in ("settings",)}
        )  # same warm clients, the 50 services only
        with count_requests() as tick_sent:
            started = time.perf_counter()
            done = product.schedule.scheduled_backups(fleet)
            tick = time.perf_counter() - started
        with count_requests() as hk_sent:
            started = time.perf_counter()
            product.housekeeping.run(fleet)
            housekeeping = time.perf_counter() - started
    finally:
        control.set_latency(0)
        control.set_duration(0)
        control.reset()
    arm = stack.port
    storage = tick_sent.total - tick_sent.to(arm)
    per = f"{tick_sent.to(arm) / FLEET:.1f} ARM + {storage / FLEET:.1f} storage"
    return [
        Row(
            f"one scheduled start (ARM {ARM_LATENCY * 1000:.0f} ms a request), s",
            f"{one:.2f}",
            BASELINE.get("one", "?"),
            _command("fleet"),
        ),
        Row(
            f"scheduled tick, {FLEET} services: s (÷ one start); requests per service",
            f"{tick:.2f} ({tick / one:.1f}x; {len(done)} started); {per}",
            BASELINE.get("tick", "?"),
            _command("fleet"),
        ),
        Row(
            f"housekeeping with {FLEET} running: s; requests (ARM + storage)",
            f"{housekeeping:.2f}; {hk_sent.to(arm)} + {hk_sent.total - hk_sent.to(arm)}",
            BASELINE.get("running", "?"),
            _command("fleet"),
        ),
    ]


# ------------------------------------------------------------------------- cold start

_TIMED_IMPORT = (
    "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
)


def _import_seconds(directory: Path, module: str, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _TIMED_IMPORT.format(module=module)],
        cwd=directory,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure_cold(product_dir: Path) -> list[Row]:
    """Two cases: the product's bytecode cached (__pycache__ written by a first import,
    as after a build that compiles), and compiled from source at every start (a
    read-only package shipped without __pycache__). The SDKs' own bytecode is cached in
    both, as pip installs it."""
    import os
    import shutil
    import tempfile

    rows: list[Row] = []
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="cold-") as fresh:
        # The product's sources alone, never imported before: nothing cached to read.
        shutil.copy(product_dir / "function_app.py", fresh)
        shutil.copytree(
            product_dir / "shared",
            Path(fresh) / "shared",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        source_env = {**base, "PYTHONDONTWRITEBYTECODE": "1"}
        cases = (
            ("bytecode cached", "cold", product_dir, base, "function_app"),
            ("compiled from source", "cold_source", Path(fresh), source_env, "function_app"),
            # What the lazy imports defer, not remove: a first trigger run compiles the
            # core it imports (health and the backup routes: shared.jobs.backups and most of
            # shared/ under it; the timers: housekeeping, restores).
            (
                "compiled from source, with the core a first trigger run loads",
                "cold_first_run",
                Path(fresh),
                source_env,
                "function_app, " + ", ".join(CORE_MODULES),
            ),
        )
        _import_seconds(product_dir, "function_app", base)  # writes __pycache__
        for label, key, where, env, modules in cases:
            bare: list[float] = []
            app: list[float] = []
            for _ in range(COLD_RUNS):  # interleaved: the machine's load hits both alike
                bare.append(_import_seconds(where, "azure.functions", env))
                app.append(_import_seconds(where, modules, env))
            b, a = statistics.median(bare), statistics.median(app)
            rows.append(
                Row(
                    f"cold import function_app ÷ import azure.functions ({label}, "
                    f"median of {COLD_RUNS})",
                    f"{a / b:.2f}x ({a * 1000:.0f} / {b * 1000:.0f} ms)",
                    BASELINE.get(key, "?"),
                    _command("cold"),
                )
            )
    return rows


# ------------------------------------------------------------------------------ prune


def measure_prune(stack: LocalStack) -> list[Row]:
    from bench.prune import measure, service_names

    services = service_names(4)
    batched = measure(stack.azurite, PRUNE_SIZE, naive=False, tag="ob", services=services)
    naive = measure(stack.azurite, PRUNE_SIZE, naive=True, tag="on", services=services)
    ok = "" if batched.complete and naive.complete else " (INCOMPLETE)"
    return [
        Row(
            f"prune {PRUNE_SIZE:,} expired backups (4 services): requests; s",
            f"{batched.requests}; {batched.seconds:.2f}{ok}",
            f"naive: {naive.requests}; {naive.seconds:.2f}",
            f"python -m bench.prune --sizes {PRUNE_SIZE}",
        )
    ]


# ------------------------------------------------------------------------------- main


def print_table(rows: Sequence[Row], baseline_label: str) -> None:
    headers = ("figure", "now", baseline_label, "reproduce")
    cells = [headers, *((r.figure, r.value, r.baseline, r.command) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    for n, cell in enumerate(cells):
        print(" | ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip())
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--only", default="idle,health,history,fleet,cold,prune")
    parser.add_argument("--product", type=Path, default=ROOT, help="checkout to measure")
    args = parser.parse_args(argv)
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    product_dir: Path = args.product.resolve()
    product = Product(product_dir)
    import logging
    import os

    logging.basicConfig(level=logging.ERROR)  # the product's warnings are not figures
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], list[Row]]]] = []
    with LocalStack.start() as stack:
        os.environ["REQUESTS_CA_BUNDLE"] = stack.ca_bundle
        if wanted & {"idle", "health"}:
            idle, health = measure_history(product, stack)
            rows += (idle if "idle" in wanted else []) + (health if "health" in wanted else [])
        if "history" in wanted:
            steps.append(("history", lambda: measure_deletion(product, stack)))
        if "fleet" in wanted:
            steps.append(("fleet", lambda: measure_fleet(product, stack)))
        if "cold" in wanted:
            steps.append(("cold", lambda: measure_cold(product_dir)))
        if "prune" in wanted:
            steps.append(("prune", lambda: measure_prune(stack)))
        for _name, step in steps:
            rows += step()
    label = "baseline (main f659d90, or naive)"
    if product_dir != ROOT:
        print(f"product measured: {product_dir}")
    print_table(rows, label)


if __name__ == "__main__":
    main()
