"""``make up``: the local stack and the HTTP API, running in the foreground for trying by hand.

Starts Azurite and the APIM management emulator (with its seed services), writes a
``local.settings.json`` that points at them (the CLI and ``func start`` read it), loads
function_app.py into azure-functions-runtime as the platform's worker does, serves its
HTTP functions on a loopback port behind a function key (each request an invocation
through the runtime), has the emulator deliver its Event Grid events (configuration
changes) to the Event Grid function through the host's webhook, fires the housekeeping
timer through it every minute, and prints commands to paste. Ctrl-C (SIGINT) or SIGTERM
stops everything it started and removes the ``local.settings.json`` it wrote (unless it
was changed meanwhile).

    python -m devstack.up [--port 7071] [--housekeeping-seconds 60] [--change-quiet-minutes 1]
    (from the repo root)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shlex
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from devstack.azurite import ROOT
from devstack.funchost import FunctionHost, worker_routes
from devstack.stack import LocalStack
from devstack.worker import Worker
from shared.runtime import set_runtime

SAMPLE = ROOT / "local.settings.sample.json"
LOCAL_SETTINGS = ROOT / "local.settings.json"
DEFAULT_PORT = 7071  # where `func start` listens
# As in `make demo`: both can be backed up with the default access type (a system-assigned
# identity), and contoso-standby is where a restore may go.
SOURCES = ("contoso-apim", "fabrikam-standby")
STANDBY_SOURCE, STANDBY = "contoso-apim", "contoso-standby"
OPERATION_SECONDS = 15  # how long each APIM operation runs, so `Running` can be seen
EVENT_FUNCTION = "config_changed"  # the Event Grid trigger the emulator's events go to


def settings(stack: LocalStack) -> dict[str, str]:
    """The sample's values, pointed at this stack."""
    values: dict[str, str] = json.loads(SAMPLE.read_text(encoding="utf-8"))["Values"]
    values.update(stack.product_env())
    values.update(
        {
            "AzureWebJobsStorage": stack.connection_string,
            "APIM_SERVICES": ",".join(stack.service_id(n) for n in SOURCES),
            "RESTORE_TARGETS": ",".join(stack.service_id(n) for n in (*SOURCES, STANDBY)),
            "STANDBY_PAIRS": f"{STANDBY_SOURCE}=>{STANDBY}",
        }
    )
    return values


def write_local_settings(path: Path, values: dict[str, str]) -> str:
    text = json.dumps({"IsEncrypted": False, "Values": values}, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def remove_local_settings(path: Path, written: str) -> None:
    """Remove our local.settings.json: it points at ports that are about to close."""
    try:
        if path.read_text(encoding="utf-8") == written:
            path.unlink()
    except FileNotFoundError:
        pass


def serve(port: int, host_key: str, worker: Worker, system_key: str) -> FunctionHost:
    keys = {route.name: secrets.token_urlsafe(24) for route in worker_routes(worker)}
    if not keys:
        # Azure's "0 functions found": say so here rather than serve nothing.
        raise SystemExit("azure-functions-runtime found no HTTP function in function_app.py")
    try:
        return FunctionHost(keys, host_key, port=port, worker=worker, system_key=system_key)
    except OSError:
        if port == 0:
            raise
        print(f"Port {port} is taken; using a free one.", flush=True)
        return FunctionHost(keys, host_key, port=0, worker=worker, system_key=system_key)


def subscribe_events(stack: LocalStack, host: FunctionHost, worker: Worker, key: str) -> bool:
    """Point the emulator's Event Grid events at the Event Grid function, through the
    host's webhook as a WebHook subscription would (docs/change-backups.md)."""
    if EVENT_FUNCTION not in worker.functions:
        return False
    url = f"{host.url}/runtime/webhooks/eventgrid?functionName={EVENT_FUNCTION}&code={key}"
    stack.control.subscribe_events(url)
    return True


def fire_housekeeping(worker: Worker, every: float, stop: threading.Event) -> None:
    """The housekeeping timer, through the runtime, until ``stop``: running operations get
    settled without anyone polling, as in Azure (every five minutes there)."""
    log = logging.getLogger("devstack.up")
    while not stop.wait(every):
        try:
            worker.timer("housekeeping")
        except Exception as exc:  # a failed tick is the next tick's to retry, as on the host
            log.warning("housekeeping failed: %s", exc)


def instructions(
    url: str,
    key: str,
    ca_bundle: str,
    shell_ca_bundle: str | None,
    housekeeping: float,
    operation_seconds: float,
    arm_endpoint: str = "",
    service_id: str = "",
    quiet_minutes: int = 0,
) -> str:
    api = f"{url}/api"
    header = shlex.quote(f"x-functions-key: {key}")
    body = shlex.quote(json.dumps({"service": "contoso-apim"}))
    restore = shlex.quote(
        json.dumps({"backupName": "<backupName>", "targetService": STANDBY, "dryRun": True})
    )
    cli = ".venv/bin/python -m shared"
    arm = shlex.quote(f"{arm_endpoint}{service_id}/products/gold?api-version=2024-05-01")
    product = shlex.quote(json.dumps({"properties": {"displayName": "Gold"}}))
    change = (
        f"curl -s --cacert {shlex.quote(ca_bundle)} -X PUT -H 'Authorization: Bearer local' "
        f"-H 'Content-Type: application/json' -d {product} {arm}"
    )
    # The CLI lets the environment win over local.settings.json (as `func start` does): a
    # shell that sets its own CA bundle would not trust the emulator's.
    if shell_ca_bundle is not None and shell_ca_bundle != ca_bundle:
        cli = f"REQUESTS_CA_BUNDLE={shlex.quote(ca_bundle)} {cli}"
    timers = (
        f"the housekeeping timer fires every {housekeeping:g}s (scheduled_backup and\n"
        "standby_sync do not fire here: their schedules are daily)."
        if housekeeping > 0
        else "no timer fires here (--housekeeping-seconds 0): run housekeeping from the CLI."
    )
    return f"""
The HTTP API is at {api}  (host key: {key})
  curl -s -H {header} {api}/health
  curl -s -i -H {header} -H 'Content-Type: application/json' -d {body} {api}/backups
  curl -s -H {header} {api}/operations/<operationId>
  curl -s -H {header} {api}/backups
  curl -s -H {header} -H 'Content-Type: application/json' -d {restore} {api}/restores
  curl -s -X POST -H {header} '{api}/prune?dryRun=true'
The CLI (from {ROOT}; it reads local.settings.json):
  {cli} backup --service contoso-apim --wait
  {cli} list
  {cli} restore <backupName> --target {STANDBY} --dry-run
  {cli} housekeeping
  {cli} prune --dry-run
Change a service's configuration through the emulator (any bearer token), and watch a
change backup (trigger "change") start {quiet_minutes} min after the last change
(CHANGE_QUIET_MINUTES; health shows the pending change meanwhile):
  {change}
  {cli} list
Backed up: {", ".join(SOURCES)}; restore target: {STANDBY}.
Each APIM operation takes {operation_seconds:g}s; the status URL settles it when asked, and
{timers}
Press Ctrl-C to stop everything.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.up", description=__doc__)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument(
        "--settings-file", type=Path, default=LOCAL_SETTINGS, help="where to write the settings"
    )
    parser.add_argument(
        "--operation-seconds",
        type=float,
        default=OPERATION_SECONDS,
        help="how long each APIM operation runs on the emulator",
    )
    parser.add_argument(
        "--change-quiet-minutes",
        type=int,
        default=1,
        help="CHANGE_QUIET_MINUTES here (the product's default is 15)",
    )
    parser.add_argument(
        "--housekeeping-seconds",
        type=float,
        default=60,
        help="fire the housekeeping timer this often (0: never)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        print(f"\n{signal.Signals(signum).name}: stopping ...", flush=True)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    began = time.monotonic()
    print("Starting Azurite and the APIM management emulator ...", flush=True)
    shell_ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    stack = LocalStack.start()
    written = ""
    try:
        stack.control.set_duration(args.operation_seconds)
        values = settings(stack)
        values["CHANGE_QUIET_MINUTES"] = str(args.change_quiet_minutes)
        written = write_local_settings(args.settings_file, values)
        os.environ.update(values)
        set_runtime(None)  # the app reads exactly these settings on its first request
        host_key = secrets.token_urlsafe(24)
        system_key = secrets.token_urlsafe(24)  # the host's eventgrid_extension key
        # The app runs in azure-functions-runtime, as in Azure: indexed on start, each
        # request an invocation through the runtime.
        with Worker() as worker, serve(args.port, host_key, worker, system_key) as host:
            events = subscribe_events(stack, host, worker, system_key)
            print(f"Local stack up in {time.monotonic() - began:.1f}s:", flush=True)
            print(
                f"  azure-functions-runtime indexed {len(worker.functions)} functions", flush=True
            )
            print(f"  Azurite blob {stack.azurite.blob_endpoint}", flush=True)
            print(f"  APIM emulator {stack.arm_endpoint}", flush=True)
            print(f"  wrote {args.settings_file}", flush=True)
            if events:
                print(f"  emulator events go to {EVENT_FUNCTION} (Event Grid webhook)", flush=True)
            every = args.housekeeping_seconds
            text = instructions(
                host.url,
                host_key,
                stack.ca_bundle,
                shell_ca_bundle,
                every,
                args.operation_seconds,
                stack.arm_endpoint,
                stack.service_id("contoso-apim"),
                args.change_quiet_minutes,
            )
            print(text, flush=True)
            timer = threading.Thread(
                target=fire_housekeeping, args=(worker, every, stop), name="housekeeping"
            )
            if every > 0:
                timer.start()
            while not stop.wait(0.5):
                pass
            if timer.is_alive():
                timer.join()  # a tick under way ends before the runtime stops
    finally:
        set_runtime(None)
        stack.stop()
        if written:
            remove_local_settings(args.settings_file, written)
    print("Stopped: Azurite, the emulator and the API; local.settings.json removed.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
