"""azd's postprovision hook (azure.yaml): the read-only doctor against what was provisioned.

Runs ``python -m shared doctor --no-write --storage-account-id <id>`` with the settings
the function app got, taken from the azd environment (azd passes its values to hooks as
environment variables), signed in as whoever runs azd (``ARM_CREDENTIAL=default``:
DefaultAzureCredential, which includes azd's own login). It writes nothing. Standard
library only: it must start even where the product's packages are not installed, and
then says how to run the doctor instead of failing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Settings the template may set from azd variables of the same name (main.parameters.json).
PASSED_THROUGH = (
    "APIM_SERVICES",
    "RESTORE_TARGETS",
    "BACKUP_ACCESS_TYPE",
    "BACKUP_CONTAINER",
    "LEDGER_TABLE",
    "OPERATIONS_TABLE",
    "RETENTION_DAYS",
)


def doctor_command(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]] | str:
    """The doctor's environment and arguments, or why it cannot run (a missing value)."""
    account = env.get("BACKUP_STORAGE_ACCOUNT", "").strip()
    services = env.get("APIM_SERVICES", "").strip()
    if not account or not services:
        return "BACKUP_STORAGE_ACCOUNT or APIM_SERVICES is not in the azd environment"
    account_id = env.get("EXISTING_BACKUP_STORAGE_ACCOUNT_ID", "").strip()
    if not account_id:
        subscription = env.get("AZURE_SUBSCRIPTION_ID", "").strip()
        group = env.get("AZURE_RESOURCE_GROUP", "").strip()
        if not subscription or not group:
            return "AZURE_SUBSCRIPTION_ID or AZURE_RESOURCE_GROUP is not in the azd environment"
        account_id = (
            f"/subscriptions/{subscription}/resourceGroups/{group}"
            f"/providers/Microsoft.Storage/storageAccounts/{account}"
        )
    settings = {name: env[name] for name in PASSED_THROUGH if env.get(name, "").strip()}
    settings.update(
        {
            "BACKUP_STORAGE_ACCOUNT": account,
            "BACKUP_STORAGE__blobServiceUri": f"https://{account}.blob.core.windows.net",
            "BACKUP_STORAGE__tableServiceUri": f"https://{account}.table.core.windows.net",
            "ARM_CREDENTIAL": "default",
        }
    )
    if env.get("BACKUP_ACCESS_TYPE") == "UserAssignedManagedIdentity" and env.get(
        "BACKUP_IDENTITY_CLIENT_ID"
    ):
        settings["BACKUP_IDENTITY_CLIENT_ID"] = env["BACKUP_IDENTITY_CLIENT_ID"]
    args = ["-m", "shared", "doctor", "--no-write", "--storage-account-id", account_id]
    return settings, args


def _python() -> str:
    for candidate in (REPO / ".venv" / "bin" / "python", REPO / ".venv" / "Scripts" / "python.exe"):
        if candidate.exists():
            return str(candidate)
    return sys.executable


def main() -> int:
    planned = doctor_command(os.environ)
    if isinstance(planned, str):
        print(f"postprovision: doctor skipped: {planned}")
        return 0
    settings, args = planned
    python = _python()
    probe = subprocess.run(
        [python, "-c", "import azure.mgmt.apimanagement, azure.identity"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        print(
            "postprovision: doctor skipped: the product's packages are not installed for "
            f"{python} (pip install -r requirements.txt), then: python {' '.join(args)}"
        )
        return 0
    print(f"postprovision: python {' '.join(args)}", flush=True)
    env = {k: v for k, v in os.environ.items() if k != "BACKUP_STORAGE"}
    env.update(settings)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    # From infra/, which has no local.settings.json: the CLI reads the one in its working
    # directory, and a developer's local one must not fill in what azd left out.
    cwd = str(REPO / "infra")
    done = subprocess.run([python, *args], env=env, cwd=cwd, check=False)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
