"""The product's identity path to storage, against an Azurite that checks bearer tokens.

With ``BACKUP_STORAGE__blobServiceUri`` and ``BACKUP_STORAGE__tableServiceUri`` (no
connection string) the product reaches blobs and tables with a token credential. Azurite
started with ``--oauth basic`` over HTTPS checks each token's claims, not its signature:
``aud`` https://storage.azure.com, ``iss`` starting with https://sts.windows.net/, and
``iat``, ``nbf`` and ``exp`` all present with now between ``nbf`` and ``exp`` (a token
missing any of them, expired, not yet valid, from another issuer or for another audience
gets 403 AuthenticationFailed). So a test credential that mints unsigned JWTs drives the
product's real wiring: Settings -> Runtime -> Clients -> the SDKs' bearer policy.

The APIM emulator writes backup blobs into the stack's own (connection-string) Azurite,
so the success path copies the blob across, as APIM would have written it there, before
the product settles the backup.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from devstack.azurite import DEV_ACCOUNT, Azurite
from devstack.stack import LocalStack
from shared.jobs.backups import start_backup
from shared.jobs.housekeeping import prune_now
from shared.jobs.operations import finish_running
from shared.rules.model import BackupRecord, Status, Trigger
from shared.rules.naming import backup_name
from shared.runtime import Runtime, set_runtime, utc_now
from shared.settings import Settings

pytestmark = pytest.mark.stack

STORAGE_AUDIENCE = "https://storage.azure.com"
STORAGE_SCOPE = f"{STORAGE_AUDIENCE}/.default"
TENANT = "0d5a6f1c-3b7e-4c2a-9f10-6a1b2c3d4e5f"  # any GUID: Azurite checks the issuer's prefix


def _b64url(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


class UnsignedJwtCredential:
    """A test-only TokenCredential: an unsigned JWT (``alg: none``) for any scope.

    The APIM emulator accepts any bearer token, so one credential serves ARM and storage,
    as the product's ARM credential does when it has no storage client id of its own.
    """

    def __init__(
        self,
        audience: str = STORAGE_AUDIENCE,
        issuer: str = f"https://sts.windows.net/{TENANT}/",
        lifetime: int = 3600,
    ) -> None:
        self.audience = audience
        self.issuer = issuer
        self.lifetime = lifetime
        self.scopes: list[str] = []

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.scopes.extend(scopes)
        now = int(time.time())
        payload = {
            "aud": self.audience,
            "iss": self.issuer,
            "iat": now,
            "nbf": now - 60,
            "exp": now + self.lifetime,
            "tid": TENANT,
            "oid": "3c9e1b52-7d4f-4a61-8e2b-0f7a9c6d5e41",
        }
        token = f"{_b64url({'alg': 'none', 'typ': 'JWT'})}.{_b64url(payload)}."
        return AccessToken(token, now + self.lifetime)

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class OAuthStorage:
    """An Azurite of our own that speaks HTTPS and checks bearer tokens."""

    azurite: Azurite
    ca_bundle: Path

    def blob_service(self, credential: UnsignedJwtCredential) -> BlobServiceClient:
        return BlobServiceClient(self.azurite.blob_endpoint, credential=credential)

    def table(self, name: str, credential: UnsignedJwtCredential) -> TableClient:
        service = TableServiceClient(self.azurite.table_endpoint, credential=credential)
        return service.get_table_client(name)


@pytest.fixture(scope="module")
def oauth_storage(
    stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OAuthStorage]:
    workdir = tmp_path_factory.mktemp("oauth-azurite")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    cert, key = workdir / "server.pem", workdir / "server.key"
    cert.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(key))
    # requests reads one bundle: trust the APIM emulator's CA and ours together.
    bundle = workdir / "ca-bundle.pem"
    emulator_ca = Path(stack.ca_bundle).read_bytes()
    bundle.write_bytes(emulator_ca.rstrip(b"\n") + b"\n" + ca.cert_pem.bytes())
    azurite = Azurite.start(oauth_cert=(cert, key))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
            yield OAuthStorage(azurite, bundle)
    finally:
        azurite.stop()


@dataclass
class IdentityProduct:
    stack: LocalStack
    storage: OAuthStorage
    env: dict[str, str]

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    def runtime(self, credential: UnsignedJwtCredential) -> Runtime:
        runtime = Runtime(self.settings, arm_credential=credential)
        set_runtime(runtime)
        return runtime

    def ledger(self, credential: UnsignedJwtCredential) -> TableClient:
        return self.storage.table(self.settings.ledger_table, credential)

    def container(self, credential: UnsignedJwtCredential) -> ContainerClient:
        return self.storage.blob_service(credential).get_container_client(self.settings.container)


@pytest.fixture
def identity_product(
    emulator: LocalStack, oauth_storage: OAuthStorage
) -> Iterator[IdentityProduct]:
    suffix = uuid.uuid4().hex[:10]
    env = {
        name: value
        for name, value in emulator.product_env().items()
        if name not in ("BACKUP_STORAGE", "REQUESTS_CA_BUNDLE")
    }
    env |= {
        "BACKUP_STORAGE__blobServiceUri": oauth_storage.azurite.blob_endpoint,
        "BACKUP_STORAGE__tableServiceUri": oauth_storage.azurite.table_endpoint,
        "ARM_CREDENTIAL": "default",  # never built: the test injects its credential
        "LEDGER_TABLE": f"idledger{suffix}",
        "OPERATIONS_TABLE": f"idops{suffix}",
        "BACKUP_CONTAINER": f"idbackups-{suffix}",
    }
    made = IdentityProduct(emulator, oauth_storage, env)
    assert made.settings.storage.uses_identity
    try:
        yield made
    finally:
        set_runtime(None)


def test_a_backup_is_recorded_and_settled_succeeded_through_oauth(
    identity_product: IdentityProduct,
):
    stack = identity_product.stack
    settings = identity_product.settings
    credential = UnsignedJwtCredential()
    runtime = identity_product.runtime(credential)
    stack.control.set_duration(600)

    started = start_backup(runtime, "contoso-apim", Trigger.CLI)
    name = started.backup.backup_name

    reader = UnsignedJwtCredential()  # a separate client of our own reads back
    running = BackupRecord.from_entity(
        identity_product.ledger(reader).get_entity("contoso-apim", name)
    )
    assert running.status is Status.RUNNING
    assert running.operation_id == started.operation.operation_id
    assert "/operationresults/" in running.operation_url

    # The emulator ends the backup and writes the blob into the stack's Azurite, the
    # account APIM was told about; put it where the product's identity path looks.
    stack.control.advance_clock(601)
    stack.control.operations()
    written = (
        BlobServiceClient.from_connection_string(stack.connection_string)
        .get_blob_client(settings.container, name)
        .download_blob()
        .readall()
    )
    assert written
    container = identity_product.container(reader)
    # The product wrote the backup's settings manifest there, by token, creating the container.
    assert set(container.list_blob_names()) == {f"{name}.manifest.json"}
    container.upload_blob(name, written)

    settled = finish_running(runtime)

    assert [(op.backup_name, op.status, op.error) for op in settled] == [
        (name, Status.SUCCEEDED, None)
    ]
    row = BackupRecord.from_entity(identity_product.ledger(reader).get_entity("contoso-apim", name))
    assert row.status is Status.SUCCEEDED
    assert row.size_bytes == len(written)
    assert row.completed_at is not None and row.error is None
    assert row.storage_account == DEV_ACCOUNT and row.container == settings.container
    # The operation row and the service's lock were settled through the same path.
    assert list(runtime.operations.running()) == []
    assert runtime.operations.lock_holder("contoso-apim") is None
    # Storage was reached with storage tokens; ARM with its own scope.
    assert STORAGE_SCOPE in credential.scopes
    assert f"{stack.arm_endpoint}/.default" in credential.scopes
    # Nothing of the product's went to the connection-string Azurite.
    plain_tables = TableServiceClient.from_connection_string(stack.connection_string)
    assert not list(
        plain_tables.query_tables("TableName eq @name", parameters={"name": settings.ledger_table})
    )


def _seed(product: IdentityProduct, credential: UnsignedJwtCredential, age: timedelta) -> str:
    """A Succeeded ledger row and its blob, written through OAuth as the product would."""
    created = (utc_now() - age).replace(microsecond=0)
    name = backup_name("contoso-apim", created)
    data = f"backup {name}".encode()
    record = BackupRecord(
        service="contoso-apim",
        backup_name=name,
        service_id=product.stack.service_id("contoso-apim"),
        storage_account=DEV_ACCOUNT,
        container=product.settings.container,
        status=Status.SUCCEEDED,
        trigger=Trigger.SCHEDULE,
        created_at=created,
        sku="Developer",
        completed_at=created + timedelta(minutes=5),
        size_bytes=len(data),
    )
    product.ledger(credential).create_entity(record.to_entity())
    product.container(credential).upload_blob(name, data)
    return name


def test_pruning_lists_reads_and_deletes_through_oauth(identity_product: IdentityProduct):
    seeder = UnsignedJwtCredential()
    identity_product.ledger(seeder).create_table()
    identity_product.container(seeder).create_container()
    old = _seed(identity_product, seeder, timedelta(days=40))
    fresh = _seed(identity_product, seeder, timedelta(hours=1))
    credential = UnsignedJwtCredential()
    runtime = identity_product.runtime(credential)

    dry = prune_now(runtime, dry_run=True)

    assert dry["dryRun"] is True and dry["errors"] == []
    assert [e["backupName"] for e in dry["pruned"]] == [old]
    assert [e["backupName"] for e in dry["kept"]] == [fresh]
    assert dry["orphans"] == []  # both blobs were listed and matched to their rows
    container = identity_product.container(seeder)
    assert set(container.list_blob_names()) == {old, fresh}
    assert identity_product.ledger(seeder).get_entity("contoso-apim", old)["Status"] == "Succeeded"
    assert credential.scopes and set(credential.scopes) == {STORAGE_SCOPE}

    real = prune_now(runtime, dry_run=False)

    assert real["errors"] == [] and [e["backupName"] for e in real["pruned"]] == [old]
    assert set(container.list_blob_names()) == {fresh}  # a batch delete, by bearer token
    pruned = identity_product.ledger(seeder).get_entity("contoso-apim", old)
    assert pruned["Status"] == "Pruned" and pruned["PrunedAt"] is not None


def error_code(exc: HttpResponseError) -> str | None:
    """The storage error code (the blob and table SDKs set it on the errors they raise)."""
    code = getattr(exc, "error_code", None)  # a plain str, or a str enum (tables)
    return None if code is None else str(getattr(code, "value", code))


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"audience": "https://management.azure.com"}, id="wrong-audience"),
        pytest.param({"lifetime": -300}, id="expired"),
        pytest.param({"issuer": "https://login.example.com/"}, id="wrong-issuer"),
    ],
)
def test_a_token_azurite_refuses_fails_the_products_storage_calls(
    identity_product: IdentityProduct, claims: dict[str, Any]
):
    credential = UnsignedJwtCredential(**claims)
    runtime = identity_product.runtime(credential)

    # The first refusal (reading the Blob service's CORS rules) is taken for a missing
    # Reader role and skipped with a warning; the next one, the operations table, raises.
    with pytest.raises(HttpResponseError) as refused:
        start_backup(runtime, "contoso-apim", Trigger.CLI)
    assert refused.value.status_code in (401, 403)
    assert error_code(refused.value) == "AuthenticationFailed"
    with pytest.raises(HttpResponseError) as blob_refused:
        runtime.blobs.size_of("contoso-apim-anything.apimbackup")
    assert blob_refused.value.status_code in (401, 403)
    assert error_code(blob_refused.value) == "AuthenticationFailed"

    # The storage refusal stopped the start before APIM was asked for a backup.
    assert not [
        r
        for r in identity_product.stack.control.requests()
        if r["method"] == "POST" and "/backup" in str(r["path"])
    ]
    # And nothing was written: the good credential sees no table of the product's.
    tables = TableServiceClient(
        identity_product.storage.azurite.table_endpoint, credential=UnsignedJwtCredential()
    )
    wanted = identity_product.settings.operations_table
    assert not list(tables.query_tables("TableName eq @name", parameters={"name": wanted}))
