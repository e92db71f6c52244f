"""A local stand-in for the Resource Manager endpoints of Azure API Management.

The real ``azure-mgmt-apimanagement`` client talks to it unchanged over HTTPS: services
come from a seed file, backup and restore are long-running operations that write and
read real blobs in Azurite, and a ``/_emulator/`` control surface lets tests move the
clock, inject faults and read what the emulator received. Run it with
``python -m emulator --help``; ``devstack.stack.LocalStack`` starts it for tests.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_SEED = Path(__file__).resolve().parent / "seed.json"
API_VERSION = "2024-05-01"

__all__ = ["API_VERSION", "DEFAULT_SEED"]
