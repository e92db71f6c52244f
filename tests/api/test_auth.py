"""API_AUTH: the auth level chosen at import, the principal header, the role check."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import azure.functions as func
import pytest

from shared.api import auth
from shared.rules import errors
from shared.settings import Settings
from shared.settings.parse import ApiAuth, ConfigError, api_auth

REPO = Path(__file__).resolve().parents[2]


def principal_header(roles: list[str], name: str = "automation-mi", **extra: object) -> str:
    claims = [{"typ": "name", "val": name}] + [{"typ": "roles", "val": r} for r in roles]
    return base64.b64encode(
        json.dumps({"auth_typ": "aad", "claims": claims, **extra}).encode()
    ).decode()


def test_api_auth_defaults_to_function_keys_and_names_the_setting_when_wrong():
    assert api_auth({}) is ApiAuth.FUNCTION_KEY
    assert api_auth({"API_AUTH": " "}) is ApiAuth.FUNCTION_KEY
    assert api_auth({"API_AUTH": "Entra"}) is ApiAuth.ENTRA
    with pytest.raises(ConfigError, match="API_AUTH") as raised:
        api_auth({"API_AUTH": "none"})
    assert "functionKey, entra" in str(raised.value)


def test_auth_level_is_anonymous_only_with_entra_and_keys_when_malformed():
    assert auth.http_auth_level({}) == func.AuthLevel.FUNCTION
    assert auth.http_auth_level({"API_AUTH": "functionKey"}) == func.AuthLevel.FUNCTION
    assert auth.http_auth_level({"API_AUTH": "entra"}) == func.AuthLevel.ANONYMOUS
    assert auth.http_auth_level({"API_AUTH": "anonymous"}) == func.AuthLevel.FUNCTION


def _route_auth_levels(env: dict[str, str]) -> set[str]:
    """The auth level of every HTTP function, as a fresh import of function_app sees it."""
    script = (
        "import function_app\n"
        "levels = {str(getattr(f.get_trigger(), 'auth_level', None)) for f in "
        "function_app.app.get_functions() if getattr(f.get_trigger(), 'route', None)}\n"
        "print(','.join(sorted(levels)))\n"
    )
    clean = {k: v for k, v in os.environ.items() if k != "API_AUTH"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(out.stdout.strip().split(","))


def test_function_app_reads_api_auth_at_import():
    assert _route_auth_levels({}) == {"FUNCTION"}
    assert _route_auth_levels({"API_AUTH": "entra"}) == {"ANONYMOUS"}


def test_read_principal_takes_roles_and_name_from_the_claims():
    principal = auth.read_principal(principal_header(["ApimBackup.Restore", "Other"]))
    assert principal.roles == {"ApimBackup.Restore", "Other"}
    assert principal.name == "automation-mi"
    # A header naming its own role claim type (role_typ) is read with it.
    custom = base64.b64encode(
        json.dumps(
            {
                "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
                "claims": [
                    {
                        "typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
                        "val": "ApimBackup.Restore",
                    }
                ],
            }
        ).encode()
    ).decode()
    assert auth.read_principal(custom).roles == {"ApimBackup.Restore"}


@pytest.mark.parametrize(
    "header",
    [
        "not base64!",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b"[1, 2]").decode(),
        base64.b64encode(b'{"claims": "x"}').decode(),
        base64.b64encode(b"{}").decode(),
        "A" * 20000,
        base64.b64encode(b"[" * 5000 + b"]" * 5000).decode(),
        base64.b64encode(b'{"claims":' * 1400 + b"[]" + b"}" * 1400).decode(),
    ],
)
def test_a_malformed_principal_is_unauthenticated(header: str):
    with pytest.raises(errors.Unauthenticated) as refused:
        auth.read_principal(header)
    assert header[:40] not in str(refused.value)  # never echoed


def test_a_principal_nested_past_the_parsers_limit_is_unauthenticated_not_a_500():
    """JSON nested past the parser's limit raises RecursionError, not ValueError: about
    1,000 levels on Python 3.11 and 3.12, about 10,000 on 3.13, and 12,000 unclosed
    brackets fit in a 16 KiB header (16,000 base64 characters). It reached the handler as
    a 500."""
    header = base64.b64encode(b"[" * 12_000).decode()
    assert len(header) <= 16 * 1024
    with pytest.raises(errors.Unauthenticated, match="too deeply nested") as refused:
        auth.read_principal(header)
    assert "[[[" not in str(refused.value) and header[:40] not in str(refused.value)


def test_odd_claims_are_skipped_not_trusted():
    raw = {"claims": [{"typ": "roles", "val": 7}, "x", {"typ": None}, {"typ": "roles", "val": "A"}]}
    header = base64.b64encode(json.dumps(raw).encode()).decode()
    assert auth.read_principal(header).roles == {"A"}


def test_function_key_mode_checks_nothing():
    assert auth.authorize({}, ApiAuth.FUNCTION_KEY, auth.RESTORE_ROLE) is None


def test_entra_mode_needs_a_principal_and_the_restore_role_for_restores():
    with pytest.raises(errors.Unauthenticated) as missing:
        auth.authorize({}, ApiAuth.ENTRA)
    assert missing.value.status == 401
    reader = {"x-ms-client-principal": principal_header([])}
    assert auth.authorize(reader, ApiAuth.ENTRA) is not None  # any authenticated caller
    with pytest.raises(errors.RestoreRoleRequired) as refused:
        auth.authorize(reader, ApiAuth.ENTRA, auth.RESTORE_ROLE)
    assert refused.value.status == 403
    assert refused.value.to_body()["error"]["code"] == "RestoreRoleRequired"
    restorer = {"X-MS-CLIENT-PRINCIPAL": principal_header([auth.RESTORE_ROLE])}
    principal = auth.authorize(restorer, ApiAuth.ENTRA, auth.RESTORE_ROLE)
    assert principal is not None and auth.RESTORE_ROLE in principal.roles


BASE = {
    "APIM_SERVICES": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ApiManagement/service/contoso-apim",
    "BACKUP_STORAGE_ACCOUNT": "devstoreaccount1",
    "BACKUP_STORAGE": "UseDevelopmentStorage=true",
}


def test_settings_refuse_entra_unless_the_platform_authenticates_in_front():
    assert Settings.from_env(BASE).api_auth is ApiAuth.FUNCTION_KEY
    with pytest.raises(ConfigError, match="WEBSITE_AUTH_ENABLED") as raised:
        Settings.from_env({**BASE, "API_AUTH": "entra"})
    assert raised.value.setting == "API_AUTH"
    with pytest.raises(ConfigError):
        Settings.from_env({**BASE, "API_AUTH": "entra", "WEBSITE_AUTH_ENABLED": "False"})
    on = Settings.from_env({**BASE, "API_AUTH": "entra", "WEBSITE_AUTH_ENABLED": "True"})
    assert on.api_auth is ApiAuth.ENTRA
