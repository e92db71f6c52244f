"""Pruning benchmark: batched pruning against one request per blob and per row.

    python -m bench.prune [--sizes 100,1000,5000]

Starts its own Azurite, seeds N expired backups (blobs and ledger rows) spread over
a few services, prunes them, and prints the HTTP requests actually sent (counted
at the transport, so retries count too) and the wall time of each approach.
Figures only: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

from azure.core import MatchConditions
from azure.core.pipeline.transport import HttpRequest, HttpResponse

# The public name is resolved lazily (typed Any); the class itself lives here.
from azure.core.pipeline.transport._requests_basic import RequestsTransport
from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import BlobServiceClient, ContainerClient

from devstack.azurite import DEV_ACCOUNT, Azurite
from shared.adapters.blobs import BackupBlobs
from shared.adapters.ledger import BackupLedger
from shared.adapters.transactions import TABLE_BATCH_SIZE
from shared.jobs.pruning import run_pruning
from shared.rules.model import BackupRecord, Status, Trigger
from shared.rules.naming import backup_name

if TYPE_CHECKING:
    from azure.core.rest import HttpRequest as RestHttpRequest
    from azure.core.rest import HttpResponse as RestHttpResponse

SERVICES = ("contoso-apim", "fabrikam-apim", "tailspin-apim", "woodgrove-apim")


def service_names(count: int) -> tuple[str, ...]:
    return (
        SERVICES[:count]
        if count <= len(SERVICES)
        else tuple(f"svc{i:03d}-apim" for i in range(count))
    )


RETENTION_DAYS = 30
MIN_KEEP = 1


class CountingTransport(RequestsTransport):
    """A requests transport that counts every request it actually sends."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent = 0

    @overload
    def send(
        self,
        request: HttpRequest,
        *,
        proxies: MutableMapping[str, str] | None = None,
        **kwargs: Any,
    ) -> HttpResponse: ...

    @overload
    def send(
        self,
        request: RestHttpRequest,
        *,
        proxies: MutableMapping[str, str] | None = None,
        **kwargs: Any,
    ) -> RestHttpResponse: ...

    def send(
        self,
        request: HttpRequest | RestHttpRequest,
        *,
        proxies: MutableMapping[str, str] | None = None,
        **kwargs: Any,
    ) -> HttpResponse | RestHttpResponse:
        self.sent += 1
        return super().send(request, proxies=proxies, **kwargs)


@dataclass
class Clients:
    """A ledger table and a container, each on its own counting transport."""

    ledger: TableClient
    blob_service: BlobServiceClient
    container: ContainerClient
    table_transport: CountingTransport
    blob_transport: CountingTransport

    @classmethod
    def open(cls, azurite: Azurite, table: str, container: str) -> Clients:
        table_transport, blob_transport = CountingTransport(), CountingTransport()
        blob_service = BlobServiceClient.from_connection_string(
            azurite.connection_string, transport=blob_transport
        )
        return cls(
            TableClient.from_connection_string(
                azurite.connection_string, table_name=table, transport=table_transport
            ),
            blob_service,
            blob_service.get_container_client(container),
            table_transport,
            blob_transport,
        )

    @property
    def requests(self) -> int:
        return self.table_transport.sent + self.blob_transport.sent

    def backups(self) -> tuple[BackupLedger, BackupBlobs]:
        """The adapters a pruning pass works through, over these clients."""
        return BackupLedger(self.ledger), BackupBlobs(
            self.blob_service, self.container.container_name
        )

    def close(self) -> None:
        self.ledger.close()
        self.blob_service.close()


def expired_backups(
    n: int, now: datetime, container: str, services: Sequence[str]
) -> list[BackupRecord]:
    """N expired, succeeded backups, round-robin over the services, a minute apart."""
    records = []
    for i in range(n):
        service = services[i % len(services)]
        created = (now - timedelta(days=31, minutes=i)).replace(microsecond=0)
        records.append(
            BackupRecord(
                service=service,
                backup_name=backup_name(service, created),
                service_id=f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg"
                f"/providers/Microsoft.ApiManagement/service/{service}",
                storage_account=DEV_ACCOUNT,
                container=container,
                status=Status.SUCCEEDED,
                trigger=Trigger.SCHEDULE,
                created_at=created,
                sku="Developer",
                completed_at=created + timedelta(minutes=8),
                size_bytes=16,
            )
        )
    return records


def seed(ledger: TableClient, container: ContainerClient, records: Sequence[BackupRecord]) -> None:
    """Rows in transactions of 100 per partition; blobs uploaded from a few threads."""
    ledger.create_table()
    container.create_container()
    by_service: dict[str, list[BackupRecord]] = {}
    for record in records:
        by_service.setdefault(record.service, []).append(record)
    for rows in by_service.values():
        for start in range(0, len(rows), TABLE_BATCH_SIZE):
            chunk = rows[start : start + TABLE_BATCH_SIZE]
            ledger.submit_transaction([("create", r.to_entity()) for r in chunk])
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda r: container.upload_blob(r.blob_name, b"apim-backup-data"), records))


def naive_prune(ledger: TableClient, container: ContainerClient, now: datetime) -> None:
    """The baseline: the same reads, then one request per blob and one per row."""
    records = list(BackupLedger(ledger).records())
    present = set(container.list_blob_names())
    for record in records:
        if record.status is Status.SUCCEEDED and record.is_expired(now):
            if record.blob_name in present:
                container.delete_blob(record.blob_name)
            ledger.update_entity(
                {
                    "PartitionKey": record.service,
                    "RowKey": record.backup_name,
                    "Status": Status.PRUNED.value,
                    "PrunedAt": now,
                },
                mode=UpdateMode.MERGE,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    complete: bool  # every row Pruned and every blob gone afterwards


def measure(azurite: Azurite, n: int, naive: bool, tag: str, services: Sequence[str]) -> Run:
    now = datetime.now(UTC)
    table, container = f"bench{tag}", f"bench-{tag}"
    seeding = Clients.open(azurite, table, container)
    seed(seeding.ledger, seeding.container, expired_backups(n, now, container, services))
    seeding.close()

    clients = Clients.open(azurite, table, container)
    started = time.perf_counter()
    if naive:
        naive_prune(clients.ledger, clients.container, now)
    else:
        run_pruning(
            *clients.backups(),
            now=now,
            retention_days=RETENTION_DAYS,
            min_keep=MIN_KEEP,
            account_name=DEV_ACCOUNT,
        )
    seconds = time.perf_counter() - started
    requests = clients.requests
    records = list(BackupLedger(clients.ledger).records())
    complete = all(r.status is Status.PRUNED for r in records) and not any(
        True for _ in clients.container.list_blob_names()
    )
    clients.close()
    return Run(requests, seconds, complete and len(records) == n)


def bound(n: int, services: int) -> int:
    """Requests the batched pass should need: deletes, per-partition transactions, reads."""
    per_service = [len(range(i, n, services)) for i in range(services)]
    transactions = sum(math.ceil(k / TABLE_BATCH_SIZE) for k in per_service)
    pages = math.ceil(n / 1000) + math.ceil(n / 5000)  # table pages + blob listing pages
    return math.ceil(n / 256) + transactions + max(pages, 2)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.prune", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sizes", default="100,1000,5000", help="comma-separated backup counts")
    parser.add_argument(
        "--services", type=int, default=4, help="services (ledger partitions) to spread them over"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    services = service_names(args.services)

    header = (
        f"{'N':>6} | {'batched req':>11} {'bound':>6} {'time s':>7} | "
        f"{'naive req':>9} {'time s':>7} | {'req ratio':>9} {'time ratio':>10} | ok"
    )
    with Azurite.start() as azurite:
        print(f"Azurite on 127.0.0.1 (blob {azurite.blob_port}, table {azurite.table_port})")
        print(f"{len(services)} service(s), all backups expired; MIN_KEEP={MIN_KEEP}")
        print(header)
        print("-" * len(header))
        for i, n in enumerate(sizes):
            batched = measure(azurite, n, naive=False, tag=f"b{i}", services=services)
            naive = measure(azurite, n, naive=True, tag=f"n{i}", services=services)
            ok = "yes" if batched.complete and naive.complete else "NO"
            limit = bound(n, len(services))
            print(
                f"{n:>6} | {batched.requests:>11} {limit:>6} {batched.seconds:>7.2f} | "
                f"{naive.requests:>9} {naive.seconds:>7.2f} | "
                f"{naive.requests / batched.requests:>8.1f}x "
                f"{naive.seconds / batched.seconds:>9.1f}x | {ok}",
                flush=True,
            )
        print(
            "bound = ceil(N/256) batch deletes + sum over services of ceil(n/100) transactions"
            " (a transaction holds one partition) + the ledger query and blob listing pages"
        )


if __name__ == "__main__":
    main()
