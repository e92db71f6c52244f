"""``python -m emulator``: serve the APIM management emulator on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType

from emulator import DEFAULT_SEED
from emulator.server import EmulatorServer, make_tls
from emulator.state import Emulator, Settings
from emulator.storage import AzuriteBlobStore


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca-dir", type=Path, required=True, help="where ca.pem is written")
    parser.add_argument("--azurite-blob-endpoint", required=True)
    parser.add_argument("--storage-account", default="devstoreaccount1")
    parser.add_argument("--storage-key", required=True)
    parser.add_argument("--seed", type=Path, default=DEFAULT_SEED)
    parser.add_argument("--duration", type=float, default=0.0, help="seconds an operation runs")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After of each 202")
    return parser.parse_args(argv)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # unwinds serve_forever, so the socket is closed cleanly


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    store = AzuriteBlobStore(args.azurite_blob_endpoint, args.storage_account, args.storage_key)
    seed = json.loads(args.seed.read_text())
    emulator = Emulator(seed, store, Settings(duration=args.duration, retry_after=args.retry_after))
    server = EmulatorServer(args.port, emulator, make_tls(args.ca_dir))
    signal.signal(signal.SIGTERM, _stop)
    print(f"APIM emulator listening on {server.base_url}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
