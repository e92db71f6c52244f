"""The client's URL rules and header parsing (runbooks/restore_apim.py), without a server."""

from __future__ import annotations

import ast
import importlib.util
import sys
from types import ModuleType

import pytest

from tests.runbook_client import RUNBOOK


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("restore_apim", RUNBOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("restore_apim", module)
    spec.loader.exec_module(module)
    return module


client = _load()
BASE = "https://func-x.azurewebsites.net"
OP = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("base", "given"),
    [
        (BASE, f"/api/operations/{OP}"),
        (BASE, f"https://func-x.azurewebsites.net/api/operations/{OP}"),
        (BASE, f"https://FUNC-X.azurewebsites.net:443/api/operations/{OP}"),
        ("http://127.0.0.1:7071", f"http://127.0.0.1:7071/api/operations/{OP}"),
        ("http://[::1]:7071", f"/api/operations/{OP}"),
        ("https://gw.contoso.example/backup", f"/backup/api/operations/{OP}"),
    ],
)
def test_a_status_url_on_the_apps_origin_is_rebuilt_from_the_base(base: str, given: str):
    checked = client.check_base_url(base)
    assert client.status_url_for(checked, given) == f"{checked}/api/operations/{OP}"


@pytest.mark.parametrize(
    "given",
    [
        f"https://evil.example/api/operations/{OP}",
        f"http://func-x.azurewebsites.net/api/operations/{OP}",
        f"https://func-x.azurewebsites.net:8443/api/operations/{OP}",
        f"https://func-x.azurewebsites.net.evil.example/api/operations/{OP}",
        f"https://evil.example\\@func-x.azurewebsites.net/api/operations/{OP}",
        f"https://evil.example%5C@func-x.azurewebsites.net/api/operations/{OP}",
        f"https://user:pw@func-x.azurewebsites.net/api/operations/{OP}",
        f"//evil.example/api/operations/{OP}",
        f"/api/operations/{OP}#x",
        f"/api/operations/{OP}?code=k",
        f"/api/operations/{OP}\n",
        f"/api/operations/\x00{OP}",
        "/api/operations/",
        f"/api/operations/{OP}/../../x",
        "/api/backups",
        "",
    ],
)
def test_anything_else_is_refused(given: str):
    with pytest.raises(client.ClientError, match="Refusing the status URL"):
        client.status_url_for(BASE, given)


@pytest.mark.parametrize(
    "url",
    [
        "http://func-x.azurewebsites.net",
        "http://10.0.0.4",
        "ftp://127.0.0.1",
        "https://",
        "https://u:p@func-x.azurewebsites.net",
        "https://func-x.azurewebsites.net/?code=k",
        "https://func-x.azurewebsites.net\\@evil.example",
        "https://func-x.azurewebsites.net:99999",
    ],
)
def test_the_base_url_must_be_https_or_loopback_http(url: str):
    with pytest.raises(client.ConfigurationError):
        client.check_base_url(url)


@pytest.mark.parametrize(
    ("headers", "cap", "expected"),
    [
        ({"retry-after": "7"}, 300.0, 7.0),
        ({"retry-after": "7"}, 2.0, 2.0),
        ({"retry-after": "-3"}, 300.0, 0.0),
        ({"retry-after": "soon"}, 300.0, 30.0),
        ({}, 300.0, 30.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 300.0, 0.0),  # in the past
    ],
)
def test_retry_after(headers: dict[str, str], cap: float, expected: float):
    assert client.retry_after(headers, cap) == expected


def test_drift_lines():
    assert client.drift_lines({"status": "Succeeded"}) == []
    assert client.drift_lines({"drift": []}) == [
        "Drift: none; the target's settings match the backup's manifest"
    ]
    item = {"setting": "identity.type", "source": "SystemAssigned", "target": None, "action": "x"}
    assert client.drift_lines({"drift": [item]})[1] == (
        "  identity.type: source SystemAssigned, target (not set); x"
    )


def test_python_310_and_the_standard_library_only():
    """Azure Automation runs it on Python 3.10 with nothing installed (the integration
    tests also run it under 3.10 when the machine has one)."""
    source = RUNBOOK.read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 10))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    outside = imported - set(sys.stdlib_module_names) - {"__future__", "automationassets"}
    assert not outside, f"not in the standard library: {sorted(outside)}"
    # Names added to the standard library after 3.10, which 3.10 would not find.
    for newer in ("datetime.UTC", "from datetime import UTC", "tomllib", "StrEnum", "Self"):
        assert newer not in source, f"{newer} is not in Python 3.10"
