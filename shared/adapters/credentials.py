"""Credentials that are not in azure-identity."""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken

EMULATOR_TOKEN = "local-emulator-token"  # noqa: S105 - not a secret: the emulator checks presence only


class EmulatorCredential:
    """A fixed bearer token for the local APIM emulator (ARM_CREDENTIAL=emulator).

    Settings refuse it unless ARM_ENDPOINT is a loopback address, so it can never be
    sent to a real Resource Manager endpoint.
    """

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(EMULATOR_TOKEN, int(time.time()) + 3600)

    def close(self) -> None:
        """Nothing to release."""
