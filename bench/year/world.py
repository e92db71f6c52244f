"""The world the simulated year runs in: its services, its calendar and its settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SERVICES = ("contoso-apim", "contoso-standby", "fabrikam-standby")
# Restores need the same tier: the two Developer services restore into each other.
RESTORE_PAIRS = {"contoso-apim": "contoso-standby", "contoso-standby": "contoso-apim"}
START = datetime(2027, 1, 1, tzinfo=UTC)
# Housekeeping ticks, in minutes after 02:00: dense while the night's backups settle
# and owed ones are caught up (the backoff is 5, 10, then 15 minutes), then every six
# to twelve hours apart (the product runs it every 5 minutes; the sim keeps the count
# down: each tick reads the whole ledger to prune).
TICKS = (5, 10, 15, 25, 40, 60, 75, 90, 120, 180, 720)
STANDBY_AT = 120  # minutes after 02:00: STANDBY_SCHEDULE's 04:00
BACKUP_SECONDS = 300  # how long each backup (and restore) runs in the emulator
RPO_HOURS = 26.0


@dataclass(frozen=True)
class YearSettings:
    """The product's settings the year runs with, which the oracle judges by."""

    retention_days: int = 30
    min_keep: int = 1
    ledger_history_days: int = 400
    rpo_hours: float = RPO_HOURS
    operation_timeout_minutes: int = 240
    standby: tuple[str, str] | None = ("contoso-apim", "contoso-standby")
    change_quiet_minutes: int = 15
    change_max_delay_minutes: int = 60
    change_backups_per_day: int = 12
    drill_warning_days: int = 7

    def env(self) -> dict[str, str]:
        env = {
            "RPO_HOURS": str(self.rpo_hours),
            "RETENTION_DAYS": str(self.retention_days),
            "MIN_KEEP": str(self.min_keep),
            "LEDGER_HISTORY_DAYS": str(self.ledger_history_days),
            "OPERATION_TIMEOUT_MINUTES": str(self.operation_timeout_minutes),
            "CHANGE_QUIET_MINUTES": str(self.change_quiet_minutes),
            "CHANGE_MAX_DELAY_MINUTES": str(self.change_max_delay_minutes),
            "CHANGE_BACKUPS_PER_DAY": str(self.change_backups_per_day),
            "DRILL_WARNING_DAYS": str(self.drill_warning_days),
        }
        if self.standby:
            env["STANDBY_PAIRS"] = "=>".join(self.standby)
        return env

    @property
    def rpo(self) -> timedelta:
        return timedelta(hours=self.rpo_hours)


# The product's defaults (docs/settings.md): what `make year` runs with.
DEFAULTS = YearSettings()
# The CI year: a retention short enough to prune within a month, MIN_KEEP above it (so
# the newest backups, not their age, decide what stays), the shortest ledger history
# allowed (31 days), and one change backup a day (so that the stream of changes meets the
# daily cap), so that a 34-night year reaches every rule.
SHORT = YearSettings(retention_days=2, min_keep=4, ledger_history_days=31, change_backups_per_day=1)
