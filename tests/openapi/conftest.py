"""The integration tests' product fixture: the app wired to the local stack."""

from tests.integration.conftest import product as product
