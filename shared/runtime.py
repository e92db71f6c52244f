"""One process's wiring: settings, clients and adapters, made once and on first use.

The SDK modules, and the adapters over them, are imported here on first use, not at
import: a cold start of the function app should not pay for them (nor compile them)
before a trigger needs them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.lazy import cached_property
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from shared.adapters.apim import Apim
    from shared.adapters.blobs import BackupBlobs
    from shared.adapters.changes import ChangeStore
    from shared.adapters.clients import Clients
    from shared.adapters.ledger import BackupLedger
    from shared.adapters.operations import OperationStore

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Runtime:
    """Everything the core functions need, behind one object that tests can build too."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        arm_credential: TokenCredential | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._arm_credential = arm_credential

    @cached_property
    def clients(self) -> Clients:
        from shared.adapters.clients import Clients

        return Clients(self.settings, self._arm_credential)

    @cached_property
    def apim(self) -> Apim:
        from shared.adapters.apim import Apim

        return Apim(self.clients.apim, self.settings.arm_endpoint)

    @cached_property
    def blobs(self) -> BackupBlobs:
        from shared.adapters.blobs import BackupBlobs

        return BackupBlobs(self.clients.blob_service, self.settings.container)

    @cached_property
    def ledger(self) -> BackupLedger:
        from shared.adapters.ledger import BackupLedger, ensure_table

        table = self.clients.table(self.settings.ledger_table)
        ensure_table(table)
        return BackupLedger(table)

    @cached_property
    def changes(self) -> ChangeStore:
        """Each service's pending configuration change, in the operations table."""
        from shared.adapters.changes import ChangeStore

        return ChangeStore(self.operations.table)

    @cached_property
    def operations(self) -> OperationStore:
        from shared.adapters.ledger import ensure_table
        from shared.adapters.operations import OperationStore

        table = self.clients.table(self.settings.operations_table)
        ensure_table(table)
        return OperationStore(table)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process's Runtime, built from the environment on first use."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(Settings.from_env(os.environ))
        return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Replace (or, with None, forget) the process's Runtime: for tests and the CLI."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime
