"""Fixtures for tests that need the local stack (Azurite and the APIM emulator).

The stack starts once per session, only when a test asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devstack.azurite import Azurite
from devstack.stack import LocalStack


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    started = LocalStack.start()
    # requests (under azure-core) trusts the emulator's CA through the standard variable.
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = started.ca_bundle
    try:
        yield started
    finally:
        if previous is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = previous
        started.stop()


@pytest.fixture
def emulator(stack: LocalStack) -> LocalStack:
    """The stack with the emulator freshly reseeded and its request log empty."""
    stack.control.reset()
    stack.control.clear_requests()
    return stack


@pytest.fixture(scope="session")
def azurite(stack: LocalStack) -> Azurite:
    """Storage only: the stack's own Azurite, so a session never runs two."""
    return stack.azurite


# The product wired to the local stack, for every folder of tests that drives it.
from tests.product import product as product  # noqa: E402
