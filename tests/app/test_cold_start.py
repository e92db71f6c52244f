"""What a cold start loads: ``import function_app`` runs at every instance start (the
worker indexes the functions then), so it loads what the decorators need and no more."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The product's modules that loading function_app.py may import: the auth level the
# decorators take (auth, settings, and what they import) and the HTTP plumbing the
# triggers share. The core (backups, restores, housekeeping, operations, and the
# adapters and rules under them) loads in the trigger that first calls it.
LOADED_AT_START = {
    "shared",
    "shared.api",  # the layers' packages: empty __init__ files
    "shared.rules",
    "shared.api.auth",
    "shared.rules.errors",
    "shared.api.http",
    "shared.lazy",
    "shared.rules.naming",
    "shared.rules.service",  # AccessType, which settings validate
    "shared.runtime",
    "shared.settings",
    "shared.settings.parse",  # API_AUTH's parser, which auth reads at import
}


def _product_modules_after(code: str) -> set[str]:
    probe = f"import json, sys; {code}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return {m for m in loaded if m == "shared" or m.startswith("shared.")}


def test_importing_the_function_app_loads_no_core_module():
    loaded = _product_modules_after("import function_app")
    assert loaded - LOADED_AT_START == set(), (
        "import function_app loads core modules at every cold start; import them in the "
        "trigger that calls them (docs/performance.md, Cold start)"
    )
    for core in (
        "shared.jobs.backups",
        "shared.jobs.restores",
        "shared.jobs.housekeeping",
        "shared.jobs.operations",
    ):
        assert core not in loaded


def test_a_trigger_loads_its_core_module_when_it_runs():
    """The other side: the lazy imports are real imports, made by the trigger itself."""
    code = (
        "import function_app, azure.functions as func; "
        "req = func.HttpRequest('GET', 'http://localhost/api/operations/x', body=b'', "
        "route_params={'operationId': 'not an id'}); "
        "function_app.get_operation(req)"
    )
    loaded = _product_modules_after(code)
    assert "shared.jobs.operations" in loaded
    assert "shared.jobs.backups" not in loaded
