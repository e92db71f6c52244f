"""Start and stop Azurite (npm, pinned in package.json) on free loopback ports.

Used by the tests, the demo and the benchmark. The process is started directly with
node (not npx) so that stopping our pid stops the server itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE_JS = ROOT / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"

# Azurite's well-known development account. Public, documented, and useless outside Azurite.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop exactly this process: SIGTERM, then SIGKILL if it does not go."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int
    process: subprocess.Popen[bytes]
    workdir: tempfile.TemporaryDirectory[str]
    # True when started with ``oauth_cert``: HTTPS on every port, bearer tokens accepted.
    oauth: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.oauth else "http"

    @property
    def blob_endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.blob_port}/{DEV_ACCOUNT}"

    @property
    def table_endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.table_port}/{DEV_ACCOUNT}"

    @property
    def queue_endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.queue_port}/{DEV_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
            f"TableEndpoint={self.table_endpoint};"
        )

    @classmethod
    def start(cls, timeout: float = 20.0, oauth_cert: tuple[Path, Path] | None = None) -> Azurite:
        """Start on free ports. With ``oauth_cert`` (a PEM certificate and its key) every
        service speaks HTTPS and checks bearer tokens' claims (``--oauth basic``): the
        client must trust the certificate's CA (e.g. through REQUESTS_CA_BUNDLE)."""
        if not AZURITE_JS.exists():
            raise RuntimeError(f"Azurite is not installed ({AZURITE_JS} missing): run `npm ci`")
        workdir = tempfile.TemporaryDirectory(prefix="azurite-")
        ports = [free_port() for _ in range(3)]
        args = [
            "node", str(AZURITE_JS),
            "--blobHost", "127.0.0.1", "--blobPort", str(ports[0]),
            "--queueHost", "127.0.0.1", "--queuePort", str(ports[1]),
            "--tableHost", "127.0.0.1", "--tablePort", str(ports[2]),
            "--skipApiVersionCheck", "--disableTelemetry", "--loose",
            "--inMemoryPersistence",
        ]  # fmt: skip
        if oauth_cert is not None:
            cert, key = oauth_cert
            args += ["--oauth", "basic", "--cert", str(cert), "--key", str(key)]
        log = open(Path(workdir.name) / "azurite.log", "wb")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ),
        )
        log.close()
        try:
            for port in ports:
                wait_for_port(port, timeout, process)
        except BaseException:
            stop_process(process)
            workdir.cleanup()
            raise
        return cls(ports[0], ports[1], ports[2], process, workdir, oauth=oauth_cert is not None)

    def stop(self) -> None:
        stop_process(self.process)
        self.workdir.cleanup()

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
