"""Settings manifests, drift after a restore and certificate warnings, against Azurite and
the APIM emulator (the emulator serves each service's settings in its service GET)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from azure.functions.timer import TimerRequest
from azure.storage.blob import BlobLeaseClient

import function_app
from shared.__main__ import main as cli
from shared.jobs.backups import start_backup
from shared.jobs.operations import finish_running
from shared.jobs.restores import standby_sync
from shared.rules.model import Status, Trigger
from shared.rules.naming import backup_name
from tests.emulator import arm_get
from tests.product import Product, body_of, get_operation, http

pytestmark = pytest.mark.stack

SECRET = "MIIKcQIBAzCCCi0GCSqGSIb3DQEHAaCCCh4EggoaMIIKFjCCBg8GCSqGSIb3DQEHAaCCBgAE"
PASSWORD = "Pa55w0rd-not-for-the-manifest"
GW = "Microsoft.WindowsAzure.ApiManagement.Gateway."
TLS10 = GW + "Security.Protocols.Tls10"
HTTP2 = GW + "Protocols.Server.Http2"
SOURCE_THUMBPRINT = "8E1D6A3C0F4B2A9D7C6E5F4A3B2C1D0E9F8A7B6C"
CA_THUMBPRINT = "1A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D"
WORKSPACE = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-apim/providers/"
    "Microsoft.OperationalInsights/workspaces/law-contoso"
)


def post_restore(body: dict[str, Any]):
    return function_app.start_restore(http("POST", "restores", json.dumps(body).encode()))


def get_backup(name: str):
    return function_app.get_backup(
        http("GET", f"backups/{name}", route_params={"backupName": name})
    )


def backed_up(product: Product, service: str = "contoso-apim") -> str:
    name = start_backup(product.runtime, service, Trigger.CLI).backup.backup_name
    finish_running(product.runtime)
    record = product.runtime.ledger.get(service, name)
    assert record is not None and record.status is Status.SUCCEEDED
    return name


def blob_text(product: Product, name: str) -> str:
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    return container.download_blob(name).readall().decode()


def blob_names(product: Product) -> set[str]:
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    return set(container.list_blob_names())


def source_properties(product: Product) -> dict[str, Any]:
    return dict(product.stack.control.service("contoso-apim")["properties"])


def test_each_backup_has_a_manifest_with_no_secret_even_when_arm_answers_one(product: Product):
    properties = source_properties(product)
    hostnames = properties["hostnameConfigurations"]
    hostnames[1].update(encodedCertificate=SECRET, certificatePassword=PASSWORD)
    hostnames[1]["certificate"]["encodedCertificate"] = SECRET
    properties["certificates"][0].update(encodedCertificate=SECRET, certificatePassword=PASSWORD)
    properties["customProperties"][GW + "Security.Backend.ClientSecret"] = PASSWORD
    properties["futureSecret"] = {"privateKey": SECRET}
    product.stack.control.patch_service(
        "contoso-apim",
        {
            "properties": properties,
            "identity": {
                "type": "SystemAssigned",
                "principalId": "aaaaaaaa-0000-0000-0000-000000000001",
                "clientSecret": PASSWORD,
            },
        },
    )
    # The real HTTP answer of the emulator's service GET does carry them...
    status, resource = arm_get(
        product.stack,
        f"{product.stack.arm_endpoint}{product.stack.service_id('contoso-apim')}"
        "?api-version=2024-05-01",
    )
    assert status == 200 and SECRET in json.dumps(resource) and PASSWORD in json.dumps(resource)
    product.stack.control.clear_requests()

    response = function_app.start_backup(http("POST", "backups", b'{"service": "contoso-apim"}'))
    assert response.status_code == 202
    name = body_of(response)["backupName"]
    # ...and the manifest reused the pre-checks' GET: one read of the service per backup,
    # and one of its diagnostic settings.
    service_path = product.stack.service_id("contoso-apim")
    assert len([r for r in product.arm_requests("GET") if r["path"] == service_path]) == 1
    assert len(product.arm_requests("GET", "/providers/Microsoft.Insights/")) == 1
    finish_running(product.runtime)

    manifest_name = f"{name}.manifest.json"
    text = blob_text(product, manifest_name)
    for secret in (SECRET, PASSWORD, "encodedCertificate", "certificatePassword", "principalId"):
        assert secret not in text
    manifest = json.loads(text)
    assert manifest["format"] == "apim-backup-manifest/1"
    assert manifest["backupName"] == name
    assert manifest["serviceId"] == service_path
    settings = manifest["settings"]
    assert settings["hostnameConfigurations"][1] == {
        "type": "Proxy",
        "hostName": "api.contoso.example",
        "negotiateClientCertificate": False,
        "defaultSslBinding": True,
        "certificateSource": "KeyVault",
        "certificateStatus": "Completed",
        "keyVaultId": "https://kv-contoso-apim.vault.azure.net/secrets/tls-cert",
        "certificate": {
            "expiry": "2027-09-30T23:59:59+00:00",
            "thumbprint": SOURCE_THUMBPRINT,
            "subject": "CN=api.contoso.example",
        },
    }
    assert settings["certificates"] == [
        {
            "storeName": "Root",
            "certificate": {
                "expiry": "2030-01-01T00:00:00+00:00",
                "thumbprint": CA_THUMBPRINT,
                "subject": "CN=Contoso Root CA",
            },
        }
    ]
    assert settings["customProperties"][TLS10] == "False"
    assert settings["customProperties"][HTTP2] == "True"
    assert settings["identity"] == {"type": "SystemAssigned", "userAssignedIdentities": []}
    assert settings["virtualNetworkType"] == "None"
    assert settings["sku"] == {"name": "Developer", "capacity": 1}
    assert settings["diagnosticSettings"] == [
        {
            "name": "apim-to-log-analytics",
            "workspaceId": WORKSPACE,
            "logAnalyticsDestinationType": "Dedicated",
            "logs": [{"categoryGroup": "allLogs", "enabled": True}],
            "metrics": [{"category": "AllMetrics", "enabled": True}],
        }
    ]
    assert manifest["unavailable"] == {}

    row = product.runtime.ledger.table.get_entity("contoso-apim", name)
    assert row["ManifestBlob"] == manifest_name
    assert "ManifestError" not in row
    assert [c["thumbprint"] for c in json.loads(row["ManifestCertificates"])] == [
        SOURCE_THUMBPRINT,
        CA_THUMBPRINT,
    ]
    detail = get_backup(name)
    assert detail.status_code == 200
    assert body_of(detail)["manifest"] == manifest
    assert body_of(detail)["manifestError"] is None
    assert body_of(detail)["manifestBlob"] == manifest_name
    listed = body_of(function_app.list_backups(http("GET", "backups")))["value"]
    assert [(i["backupName"], i["manifestBlob"]) for i in listed] == [(name, manifest_name)]
    assert "manifest" not in listed[0]

    # Every backup writes its own: the standby's too.
    other = backed_up(product, "contoso-standby")
    assert f"{other}.manifest.json" in blob_names(product)


def test_a_manifest_that_cannot_be_written_does_not_fail_the_backup(
    product: Product, capsys: pytest.CaptureFixture[str]
):
    # A leased blob of the very name the manifest will take makes the write fail.
    blocked = f"{backup_name('contoso-apim', product.clock.now)}.manifest.json"
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    container.create_container()
    container.upload_blob(blocked, b"{}")
    BlobLeaseClient(container.get_blob_client(blocked)).acquire(lease_duration=-1)

    name = backed_up(product)
    record = product.runtime.ledger.get("contoso-apim", name)
    assert record is not None and record.status is Status.SUCCEEDED
    assert record.manifest_blob is None
    assert record.manifest_error is not None
    assert record.manifest_error.startswith("The manifest could not be written")
    detail = body_of(get_backup(name))
    assert detail["manifest"] is None and detail["manifestError"] == record.manifest_error

    # The restore of that backup succeeds, and says why it has no drift to show.
    started = body_of(post_restore({"backupName": name, "targetService": "contoso-standby"}))
    done = body_of(get_operation(started["operationId"]))
    assert done["status"] == "Succeeded"
    assert done["drift"] is None
    assert "could not be written" in done["driftError"]

    # The next backup tries again.
    product.clock.now += timedelta(minutes=5)
    later = backed_up(product)
    assert product.runtime.ledger.get("contoso-apim", later).manifest_blob == (  # type: ignore[union-attr]
        f"{later}.manifest.json"
    )
    assert cli(["show", later]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["manifest"]["backupName"] == later


def test_a_manifest_gone_or_too_large_is_named_and_the_backup_still_shown(product: Product):
    name = backed_up(product)
    container = product.blob_service.get_container_client(product.runtime.settings.container)
    manifest_blob = f"{name}.manifest.json"

    # Larger than read_json's 1 MiB cap (valid JSON, so only the cap can refuse it).
    container.upload_blob(manifest_blob, b'{"pad": "' + b"x" * (1 << 20) + b'"}', overwrite=True)
    detail = body_of(get_backup(name))
    assert detail["backupName"] == name and detail["status"] == "Succeeded"
    assert detail["manifest"] is None
    assert detail["manifestError"] == "The manifest could not be read: ValueError"

    container.delete_blob(manifest_blob)
    detail = body_of(get_backup(name))
    assert detail["manifest"] is None
    assert detail["manifestError"] == "The manifest blob is gone (pruned with its backup?)"


EXPECTED_DRIFT = [
    {
        "setting": "hostnameConfigurations[Proxy:api.contoso.example]",
        "source": "api.contoso.example",
        "target": None,
        "action": "Hostname api.contoso.example (Proxy) is not configured on contoso-standby: "
        "add it with the certificate from https://kv-contoso-apim.vault.azure.net/secrets/"
        "tls-cert before moving DNS to contoso-standby.",
    },
    {
        "setting": f"certificates[{CA_THUMBPRINT}]",
        "source": CA_THUMBPRINT,
        "target": None,
        "action": "CA certificate CN=Contoso Root CA (store Root, expires 2030-01-01) is not on "
        "contoso-standby: upload it there.",
    },
    {
        "setting": f"customProperties.{HTTP2}",
        "source": "True",
        "target": "False",
        "action": "HTTP/2 is enabled on the source, not on the target: set it to True on "
        "contoso-standby (Protocols + ciphers).",
    },
    {
        "setting": f"customProperties.{TLS10}",
        "source": "True",
        "target": "False",
        "action": "TLS 1.0 is enabled on the source, not on the target: set it to True on "
        "contoso-standby (Protocols + ciphers).",
    },
    {
        "setting": "identity.type",
        "source": "SystemAssigned, UserAssigned",
        "target": "SystemAssigned",
        "action": "contoso-standby has no UserAssigned managed identity: enable it and grant it "
        "what the source's has (Key Vault certificates and named values, backends).",
    },
    {
        "setting": "diagnosticSettings[apim-to-log-analytics]",
        "source": WORKSPACE,
        "target": None,
        "action": "Azure Monitor diagnostic setting apim-to-log-analytics (to "
        f"{WORKSPACE}, logs: allLogs) is not on contoso-standby: create it there.",
    },
]


def test_standby_sync_into_a_standby_with_other_settings_gives_the_exact_drift(
    product: Product, caplog: pytest.LogCaptureFixture
):
    product.reconfigure(STANDBY_PAIRS="contoso-apim=>contoso-standby")
    properties = source_properties(product)
    properties["customProperties"][TLS10] = "True"
    product.stack.control.patch_service(
        "contoso-apim",
        {
            "properties": properties,
            "identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {}},
        },
    )
    standby_before = product.stack.control.service("contoso-standby")
    name = backed_up(product)
    product.stack.control.set_duration(60)
    (operation,) = standby_sync(product.runtime)
    product.stack.control.advance_clock(61)

    with caplog.at_level(logging.WARNING, logger="shared.jobs.drift"):
        function_app.housekeeping_timer(TimerRequest())

    done = product.runtime.operations.get(operation.operation_id)
    assert done is not None and done.status is Status.SUCCEEDED
    assert list(done.drift or ()) == EXPECTED_DRIFT
    response = get_operation(operation.operation_id)
    assert response.status_code == 200
    assert body_of(response)["drift"] == EXPECTED_DRIFT
    assert body_of(response)["driftError"] is None
    logged = [r.getMessage() for r in caplog.records if r.name == "shared.jobs.drift"]
    assert len(logged) == 1
    assert f"Restore of {name} into contoso-standby (standby): 6 setting(s) differ" in logged[0]
    assert "TLS 1.0 is enabled on the source, not on the target" in logged[0]
    # As APIM does, the restore left the standby's own settings alone.
    standby_after = product.stack.control.service("contoso-standby")
    assert standby_after["properties"] == standby_before["properties"]
    assert standby_after["identity"] == standby_before["identity"]


def test_a_drift_too_long_for_one_table_property_is_cut_and_the_restore_settles(
    product: Product,
):
    # 100 custom hostnames missing on the standby: ~300 characters of drift each, about
    # 30,000 in all, past what one table property holds. Unbounded, the settle's write
    # of the operation row would fail, and the restore would never leave Running.
    properties = source_properties(product)
    properties["hostnameConfigurations"] += [
        {
            "type": "Proxy",
            "hostName": f"api{i:03}.contoso.example",
            "certificateSource": "KeyVault",
            "keyVaultId": f"https://kv-contoso-apim.vault.azure.net/secrets/tls-{i:03}",
        }
        for i in range(100)
    ]
    product.stack.control.patch_service("contoso-apim", {"properties": properties})
    name = backed_up(product)

    started = body_of(post_restore({"backupName": name, "targetService": "contoso-standby"}))
    done = get_operation(started["operationId"])

    assert done.status_code == 200
    body = body_of(done)
    assert body["status"] == "Succeeded" and body["driftError"] is None
    assert len(json.dumps(body["drift"])) <= 30_000
    assert body["drift"][0]["setting"] == "hostnameConfigurations[Proxy:api.contoso.example]"
    note = body["drift"][-1]
    assert note["setting"] == "drift"
    assert note["action"].endswith(
        "more difference(s) not shown: compare the manifest with the target."
    )


def test_a_restore_into_a_matching_standby_gives_an_empty_drift(
    product: Product, capsys: pytest.CaptureFixture[str]
):
    source = source_properties(product)
    standby = product.stack.control.service("contoso-standby")["properties"]
    # Same custom hostname and certificate, CA certificates and protocols; its own
    # default hostname and region stay its own.
    standby["hostnameConfigurations"] = [
        standby["hostnameConfigurations"][0],
        source["hostnameConfigurations"][1],
    ]
    standby["certificates"] = source["certificates"]
    standby["customProperties"] = source["customProperties"]
    diagnostics = product.stack.control.service("contoso-apim")["diagnosticSettings"]
    product.stack.control.patch_service(
        "contoso-standby", {"properties": standby, "diagnosticSettings": diagnostics}
    )
    name = backed_up(product)

    started = post_restore({"backupName": name, "targetService": "contoso-standby"})
    assert started.status_code == 202
    done = get_operation(body_of(started)["operationId"])
    assert done.status_code == 200
    assert body_of(done)["status"] == "Succeeded"
    assert body_of(done)["drift"] == []
    assert body_of(done)["driftError"] is None

    assert cli(["status", body_of(started)["operationId"]]) == 0
    printed = capsys.readouterr()
    # stdout stays one JSON document (for jq and scripts); the summary is for the eye.
    assert json.loads(printed.out)["drift"] == []
    assert "drift: none; the target's settings match the backup's manifest" in printed.err


def test_health_warns_of_a_certificate_expiring_in_9_days_not_of_one_in_90(product: Product):
    now = product.clock.now
    properties = source_properties(product)
    properties["hostnameConfigurations"][1]["certificate"]["expiry"] = (
        now + timedelta(days=9, hours=1)
    ).isoformat()
    properties["certificates"][0]["certificate"]["expiry"] = (now + timedelta(days=90)).isoformat()
    product.stack.control.patch_service("contoso-apim", {"properties": properties})
    backed_up(product)
    backed_up(product, "contoso-standby")

    response = function_app.health(http("GET", "health"))
    body = body_of(response)
    assert response.status_code == 200 and body["status"] == "Healthy"
    assert body["warnings"] == {
        "certificates": [
            {
                "service": "contoso-apim",
                "hostName": "api.contoso.example",
                "thumbprint": SOURCE_THUMBPRINT,
                "subject": "CN=api.contoso.example",
                "expiresAt": (now + timedelta(days=9, hours=1)).isoformat().replace("+00:00", "Z"),
                "daysLeft": 9,
            }
        ],
        "drills": [],  # a standby is configured, and no drill is overdue yet
    }

    # Only the newest manifest counts: a renewed certificate ends the warning.
    properties["hostnameConfigurations"][1]["certificate"]["expiry"] = (
        now + timedelta(days=365)
    ).isoformat()
    product.stack.control.patch_service("contoso-apim", {"properties": properties})
    product.clock.now += timedelta(minutes=1)
    backed_up(product)
    assert body_of(function_app.health(http("GET", "health")))["warnings"] == {
        "certificates": [],
        "drills": [],
    }


def test_pruning_deletes_the_manifest_with_its_backup_and_never_calls_it_an_orphan(
    product: Product,
):
    old = backed_up(product)
    product.clock.now += timedelta(days=31)
    fresh = backed_up(product)
    assert {f"{old}.manifest.json", f"{fresh}.manifest.json"} <= blob_names(product)

    dry = body_of(function_app.prune(http("POST", "prune", params={"dryRun": "true"})))
    assert dry["orphans"] == []
    assert f"{old}.manifest.json" in blob_names(product)

    result = body_of(function_app.prune(http("POST", "prune")))
    assert [p["backupName"] for p in result["pruned"]] == [old]
    assert result["orphans"] == [] and result["errors"] == []
    assert blob_names(product) == {fresh, f"{fresh}.manifest.json"}


def test_diagnostic_settings_that_may_not_be_read_are_noted_and_not_drift(product: Product):
    # Without Monitoring Reader, Resource Manager refuses the diagnostic settings.
    product.stack.control.inject_fault(
        method="GET", path_contains="/diagnosticSettings", status=403, times=2
    )
    name = backed_up(product)
    manifest = body_of(get_backup(name))["manifest"]
    assert manifest["settings"]["diagnosticSettings"] is None
    assert manifest["unavailable"] == {"diagnosticSettings": "Forbidden: Injected fault."}
    assert manifest["settings"]["hostnameConfigurations"]  # the rest was recorded

    started = body_of(post_restore({"backupName": name, "targetService": "contoso-apim"}))
    done = body_of(get_operation(started["operationId"]))
    assert done["status"] == "Succeeded" and done["drift"] == []


def test_a_target_that_cannot_be_read_leaves_the_restore_succeeded_without_drift(
    product: Product,
):
    name = backed_up(product)
    started = body_of(post_restore({"backupName": name, "targetService": "contoso-standby"}))
    product.stack.control.inject_fault(
        method="GET", path_contains="/service/contoso-standby?", status=403
    )

    done = get_operation(started["operationId"])

    assert done.status_code == 200
    assert body_of(done)["status"] == "Succeeded"
    assert body_of(done)["drift"] is None
    assert body_of(done)["driftError"] == (
        "No drift computed: Reading contoso-standby from Resource Manager failed: "
        "Forbidden: Injected fault."
    )
