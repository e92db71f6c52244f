"""The world the simulated year runs in: its services, its calendar and its settings."""

from __future__ import annotations

from datetime import UTC, datetime

SERVICES = ("contoso-apim", "contoso-standby", "fabrikam-standby")
START = datetime(2027, 1, 1, tzinfo=UTC)
# Housekeeping ticks, in minutes after 02:00: dense while the night's backups settle
# and owed ones are caught up (the backoff is 5, 10, then 15 minutes), then every six
# to twelve hours apart (the product runs it every 5 minutes; the sim keeps the count
# down: each tick reads the whole ledger to prune).
TICKS = (5, 10, 15, 25, 40, 60, 75, 90, 120, 180, 720)
BACKUP_SECONDS = 300  # how long each backup runs in the emulator
RPO_HOURS = 26.0
