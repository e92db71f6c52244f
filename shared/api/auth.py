"""Who may call the HTTP API: the ``API_AUTH`` setting.

- ``functionKey`` (the default): the Functions host checks a function key on every
  route (``x-functions-key``); the app does nothing more.
- ``entra``: App Service authentication (Easy Auth) with Entra ID sits in front of the
  app. The platform refuses a request without a valid token (401) before it reaches the
  app, removes any ``X-MS-CLIENT-PRINCIPAL`` header a caller sent, and passes the
  caller's claims in that header (base64 JSON: ``{"claims": [{"typ", "val"}, ...]}``).
  The routes are anonymous at the Functions level, and the app itself refuses a request
  without that header (401 ``Unauthenticated``) and a restore unless the caller's
  ``roles`` claims hold ``ApimBackup.Restore`` (403 ``RestoreRoleRequired``).

The auth level is decided once, when function_app.py is imported (the decorators need
it); the per-request check reads the validated settings, which refuse ``entra`` unless
the platform says its authentication is on (``WEBSITE_AUTH_ENABLED``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

import azure.functions as func

from shared.rules import errors
from shared.settings.parse import ApiAuth, ConfigError, api_auth

PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
RESTORE_ROLE = "ApimBackup.Restore"
# The claim type of app roles in Entra ID tokens as Easy Auth passes them; a header may
# name another one in role_typ.
ROLES_CLAIM = "roles"
_MAX_HEADER = 16 * 1024


def http_auth_level(env: Mapping[str, str]) -> func.AuthLevel:
    """Function keys unless API_AUTH is entra. A malformed API_AUTH keeps keys (fail
    closed); the first request then answers 500 naming the setting."""
    try:
        mode = api_auth(env)
    except ConfigError:
        return func.AuthLevel.FUNCTION
    return func.AuthLevel.ANONYMOUS if mode is ApiAuth.ENTRA else func.AuthLevel.FUNCTION


@dataclass(frozen=True)
class Principal:
    """The caller as App Service authentication describes it."""

    name: str | None
    roles: frozenset[str]


def read_principal(header: str) -> Principal:
    """Decode ``X-MS-CLIENT-PRINCIPAL``; Unauthenticated when it is not what the platform
    sends (the platform never sends a malformed one)."""
    if len(header) > _MAX_HEADER:
        raise errors.Unauthenticated("The client principal header is too large")
    try:
        data = json.loads(base64.b64decode(header, validate=True))
    except (ValueError, binascii.Error):
        raise errors.Unauthenticated("The client principal header is not base64 JSON") from None
    except RecursionError:
        # Python 3.11 and 3.12 parse JSON nested past ~1000 levels this way.
        raise errors.Unauthenticated(
            "The client principal header is too deeply nested to be a principal"
        ) from None
    claims = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(claims, list):
        raise errors.Unauthenticated("The client principal header has no claims")
    role_types = {ROLES_CLAIM, str(data.get("role_typ") or ROLES_CLAIM)}
    name_type = str(data.get("name_typ") or "name")
    roles: set[str] = set()
    name: str | None = None
    for claim in claims:
        if not isinstance(claim, dict):
            continue
        typ, val = claim.get("typ"), claim.get("val")
        if not isinstance(typ, str) or not isinstance(val, str):
            continue
        if typ in role_types:
            roles.add(val)
        elif typ == name_type and name is None:
            name = val
    return Principal(name, frozenset(roles))


def authorize(
    headers: Mapping[str, str], mode: ApiAuth, role: str | None = None
) -> Principal | None:
    """Refuse a request the API_AUTH mode does not allow; the caller when entra."""
    if mode is ApiAuth.FUNCTION_KEY:
        return None  # the host has checked the function key already
    header = _header(headers, PRINCIPAL_HEADER)
    if not header:
        raise errors.Unauthenticated(
            "This API requires an Entra ID token (App Service authentication); "
            "no authenticated caller reached the app"
        )
    principal = read_principal(header)
    if role is not None and role not in principal.roles:
        raise errors.RestoreRoleRequired(
            f"The caller's token does not hold the app role '{role}', which restores require"
        )
    return principal


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # func.HttpRequest headers are case-insensitive; a plain dict (tests) may not be.
    value = headers.get(name) or headers.get(name.lower())
    if value is None:
        for key, item in headers.items():
            if key.lower() == name.lower():
                return item
    return value
