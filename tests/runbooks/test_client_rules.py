"""The client's URL rules (issue 13 item 3, runbook side), over real HTTP on loopback:
the key goes only to the configured function app. A stub app answers what the real app
never would (a status URL elsewhere, a redirect); a trap server records anything that
reaches it. Also: Retry-After is honoured, https works, and a restore's drift is printed."""

from __future__ import annotations

import itertools
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.runbook_client import Answer, Seen, StubServer, run_client

OPERATION = "0123456789abcdef0123456789abcdef"
KEY = "pipeline-key"
STARTED = {"operationId": OPERATION, "backupName": "contoso-apim-20261129T020000Z.apimbackup"}
DONE = {**STARTED, "kind": "backup", "status": "Succeeded", "service": "contoso-apim"}


def app(location: str, poll: Answer | None = None) -> StubServer:
    """A stand-in function app: 202 with ``location`` on POST, ``poll`` on GET."""

    def respond(seen: Seen) -> Answer:
        if seen.method == "POST":
            return 202, {"Location": location, "Retry-After": "0"}, {**STARTED, "status": "Running"}
        return poll or (200, {}, DONE)

    return StubServer(respond)


@pytest.fixture
def trap() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


def cli(url: str, *args: str, extra_env: dict[str, str] | None = None):
    env = {"APIM_BACKUP_URL": url, "APIM_BACKUP_KEY": KEY, **(extra_env or {})}
    return run_client(*args, "--poll-cap", "0.05", env=env, timeout=30)


def test_a_relative_status_url_on_the_app_is_followed(trap: StubServer):
    with app(f"/api/operations/{OPERATION}") as stub:
        result = cli(stub.url, "backup", "--wait")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "Succeeded"
    assert [(s.method, s.path) for s in stub.seen] == [
        ("POST", "/api/backups"),
        ("GET", f"/api/operations/{OPERATION}"),
    ]
    assert all(s.headers["x-functions-key"] == KEY for s in stub.seen)


TRICKS = {
    "another port": "http://127.0.0.1:{trap}/api/operations/{op}",
    "another scheme": "https://127.0.0.1:{app}/api/operations/{op}",
    "scheme-relative": "//127.0.0.1:{trap}/api/operations/{op}",
    "backslash userinfo": "http://127.0.0.1:{trap}\\@127.0.0.1:{app}/api/operations/{op}",
    "encoded backslash": "http://127.0.0.1:{trap}%5C@127.0.0.1:{app}/api/operations/{op}",
    "userinfo": "http://evil@127.0.0.1:{app}/api/operations/{op}",
    "at in the path": "http://127.0.0.1:{app}@127.0.0.1:{trap}/api/operations/{op}",
    "tab": "http://127.0.0.1:{app}/api/operations/\t{op}",
    "fragment": "http://127.0.0.1:{app}/api/operations/{op}#x",
    "not an operation": "http://127.0.0.1:{app}/api/backups/{op}",
    "traversal": "http://127.0.0.1:{app}/api/operations/../../x/{op}",
    "ipv6 loopback": "http://[::1]:{app}/api/operations/{op}",
    "localhost by name": "http://localhost:{app}/api/operations/{op}",
}


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_a_status_url_off_the_app_is_never_followed(trick: str, trap: StubServer):
    holder: dict[str, int] = {}

    def respond(seen: Seen) -> Answer:
        location = TRICKS[trick].format(trap=trap.port, app=holder["port"], op=OPERATION)
        return 202, {"Location": location, "Retry-After": "0"}, {**STARTED, "status": "Running"}

    with StubServer(respond) as stub:
        holder["port"] = stub.port
        result = cli(stub.url, "backup", "--wait")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "was started, but it is not followed" in result.stderr
    assert "Refusing the status URL" in result.stderr
    assert trap.seen == []
    assert [s.method for s in stub.seen] == ["POST"]  # no poll anywhere


def test_a_redirect_of_the_start_is_not_followed(trap: StubServer):
    def respond(seen: Seen) -> Answer:
        return 307, {"Location": f"{trap.url}/api/backups"}, None

    with StubServer(respond) as stub:
        result = cli(stub.url, "backup", "--wait")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "RedirectRefused" in result.stderr
    assert trap.seen == []


def test_a_redirect_of_a_poll_is_not_followed(trap: StubServer):
    poll = (302, {"Location": f"{trap.url}/api/operations/{OPERATION}"}, None)
    with app(f"/api/operations/{OPERATION}", poll) as stub:
        result = cli(stub.url, "backup", "--wait")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "RedirectRefused" in result.stderr
    assert trap.seen == []
    assert [s.method for s in stub.seen] == ["POST", "GET"]


@pytest.mark.parametrize(
    "url",
    [
        "http://backup.example.net",
        "http://10.0.0.4:7071",
        "ftp://127.0.0.1",
        "https://u:p@x.example",
    ],
)
def test_the_app_url_must_be_https_except_on_loopback(url: str):
    result = cli(url, "backup", "--wait")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "FAILED: The function app URL" in result.stderr


def test_retry_after_is_honoured():
    arrivals: list[float] = []

    def respond(seen: Seen) -> Answer:
        arrivals.append(time.monotonic())
        if seen.method == "POST":
            return 202, {"Location": f"/api/operations/{OPERATION}", "Retry-After": "1"}, STARTED
        if len(arrivals) < 4:
            return 202, {"Retry-After": "1"}, {**STARTED, "status": "Running"}
        return 200, {}, DONE

    with StubServer(respond) as stub:
        env = {"APIM_BACKUP_URL": stub.url, "APIM_BACKUP_KEY": KEY}
        result = run_client("backup", "--wait", "--poll-cap", "5", env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert len(arrivals) == 4  # the start and three arrivals, each after the Retry-After before it
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(gap >= 0.9 for gap in gaps), gaps


def test_https_with_the_system_trust_store_override(tmp_path: Path):
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    def respond(seen: Seen) -> Answer:
        if seen.method == "POST":
            return 202, {"Location": f"/api/operations/{OPERATION}", "Retry-After": "0"}, STARTED
        return 200, {}, DONE

    with StubServer(respond, tls=server_tls) as stub:
        assert stub.url.startswith("https://")
        # The client trusts a private CA the standard way: OpenSSL's SSL_CERT_FILE.
        result = cli(stub.url, "backup", "--wait", extra_env={"SSL_CERT_FILE": str(ca_file)})
        untrusted = cli(stub.url, "backup", "--wait")
    assert result.returncode == 0, result.stderr
    assert [s.method for s in stub.seen] == ["POST", "GET"]
    # Verification is never off: without the CA the start does not even reach the app.
    assert untrusted.returncode == 4
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr


DRIFT = [
    {
        "setting": "hostnameConfigurations[Proxy:api.contoso.example]",
        "source": "KeyVault",
        "target": None,
        "action": "Add the custom domain and its certificate to the target",
    },
    {"setting": "identity.type", "source": "SystemAssigned", "target": "None", "action": None},
]


def restored(drift: list[dict[str, str | None]]) -> StubServer:
    done = {**DONE, "kind": "restore", "service": "contoso-standby", "drift": drift}
    return app(f"/api/operations/{OPERATION}", (200, {}, done))


def test_the_runbook_prints_the_restores_drift():
    with restored(DRIFT) as stub:
        env = {
            "ApimBackupFunctionUrl": stub.url,
            "ApimBackupRestoreKey": KEY,
            "ApimBackupPollCapSeconds": "0.05",
        }
        result = run_client(STARTED["backupName"], "contoso-standby", env=env, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "Drift: 2 setting(s) differ from the backup's manifest:" in lines
    assert (
        "  hostnameConfigurations[Proxy:api.contoso.example]: source KeyVault, target (not set); "
        "Add the custom domain and its certificate to the target"
    ) in lines
    assert "  identity.type: source SystemAssigned, target None; (not set)" in lines


def test_the_cli_prints_no_drift_and_keeps_it_in_the_result():
    with restored([]) as stub:
        result = cli(stub.url, "restore", "--backup", STARTED["backupName"], "--wait")
    assert result.returncode == 0, result.stderr
    assert "Drift: none; the target's settings match the backup's manifest" in result.stderr
    assert json.loads(result.stdout)["drift"] == []


def test_an_operation_id_with_a_final_newline_is_not_an_operation_id(trap: StubServer):
    """The id must match in full (issue 17, defect 9): refused as the operator's input,
    before any URL is built or any request sent."""
    result = cli(trap.url, "status", OPERATION + "\n")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Not an operation id" in result.stderr
    assert trap.seen == []
