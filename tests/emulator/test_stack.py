"""The local stack itself: what it offers the product, and that it cleans up after itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack.stack import LocalStack

pytestmark = pytest.mark.stack


def _children(pids: set[int]) -> set[int]:
    """Every live process whose parent is one of ``pids`` (read from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone while we looked
        if int(fields[1]) in pids and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_no_process_started_by_the_stack_survives_stop():
    stack = LocalStack.start()
    pids = {stack.process.pid, stack.azurite.process.pid}
    descendants = _children(pids)
    workdir = Path(stack.workdir.name)
    assert all(_alive(pid) for pid in pids)

    stack.stop()

    assert not [pid for pid in pids | descendants if _alive(pid)]
    assert not workdir.exists()


def test_product_env_points_at_the_stack(stack: LocalStack):
    env = stack.product_env()

    assert env["APIM_SERVICES"].split(",") == [
        stack.service_id("contoso-apim"),
        stack.service_id("fabrikam-apim"),
    ]
    assert {s.rsplit("/", 1)[1] for s in env["RESTORE_TARGETS"].split(",")} == {
        "contoso-apim",
        "fabrikam-apim",
        "contoso-standby",
        "fabrikam-standby",
    }
    assert env["ARM_ENDPOINT"] == stack.arm_endpoint.rstrip("/")
    assert env["ARM_CREDENTIAL"] == "emulator"
    assert env["BACKUP_STORAGE_ACCOUNT"] == "devstoreaccount1"
    assert f"BlobEndpoint={stack.azurite.blob_endpoint};" in env["BACKUP_STORAGE"]
    assert Path(env["REQUESTS_CA_BUNDLE"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert os.environ["REQUESTS_CA_BUNDLE"] == stack.ca_bundle  # set for the session
    assert stack.service_id("x") == (
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-apim"
        "/providers/Microsoft.ApiManagement/service/x"
    )
