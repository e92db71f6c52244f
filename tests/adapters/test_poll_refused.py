"""A status poll that Resource Manager refuses (403: the function's identity lacks
Microsoft.ApiManagement/service/operationresults/read) against the local stack: the
operation stays Running (a token glitch must not fail a good backup), each refusal is
logged as a warning naming the ARM error, and the eventual timeout says the status was
refused instead of looking like a stuck operation."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from shared.jobs.backups import start_backup
from shared.jobs.restores import RestoreRequest, start_restore
from shared.rules.arm import POLL_ACTION
from shared.rules.model import Status, Trigger
from shared.signals import LOGGER_NAME
from tests.product import Product, body_of, get_operation, signals

pytestmark = pytest.mark.stack

CLIENT = "5d4c3b2a-0000-4000-8000-000000000001"


def refuse_polls(product: Product, service: str) -> str:
    """Every poll of an operation answered as Azure answers a missing role; the message."""
    scope = f"{product.stack.service_id(service)}/operationresults/x"
    message = (
        f"The client '{CLIENT}' with object id '{CLIENT}' does not have authorization to "
        f"perform action '{POLL_ACTION}' over scope '{scope}' or the scope is invalid. If "
        "access was recently granted, please refresh your credentials."
    )
    product.stack.control.inject_fault(
        method="GET",
        path_contains="/operationresults/",
        status=403,
        code="AuthorizationFailed",
        message=message,
        times=1000,
    )
    return message


def test_a_refused_poll_stays_running_then_times_out_naming_the_refusal(
    product: Product, caplog: pytest.LogCaptureFixture
):
    product.stack.control.set_duration(10**6)  # APIM never finishes: only the timeout ends it
    started = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    operation_id = started.operation.operation_id
    message = refuse_polls(product, "contoso-apim")
    product.stack.control.clear_requests()

    with caplog.at_level(logging.WARNING):
        running = get_operation(operation_id)

    assert running.status_code == 202
    assert body_of(running)["status"] == "Running"
    [poll] = product.arm_requests("GET", "/operationresults/")
    assert poll["status"] == 403  # the refusal really came from the stack
    [warning] = [r for r in caplog.records if r.name == "shared.adapters.apim"]
    assert warning.levelno == logging.WARNING
    logged = warning.getMessage()
    assert f"403 AuthorizationFailed: {message}" in logged
    assert "contoso-apim" in logged
    assert "api-version" not in logged and "Bearer" not in logged  # no query, no token
    assert signals(caplog, "BackupFailed") == []

    caplog.clear()
    timeout = product.runtime.settings.operation_timeout_minutes
    product.clock.now += timedelta(minutes=timeout + 1)
    with caplog.at_level(logging.WARNING):
        ended = get_operation(operation_id)

    assert ended.status_code == 200
    body = body_of(ended)
    assert body["status"] == "Failed"
    error = body["error"]["message"]
    assert error == (
        f"Timed out after {timeout} minutes without a status: Resource Manager refused the status "
        f"request (403 AuthorizationFailed: {message}): check that the function's identity "
        f"holds {POLL_ACTION} on contoso-apim"
    )
    row = product.runtime.ledger.get("contoso-apim", started.backup.backup_name)
    assert row is not None and row.status is Status.FAILED and row.error == error
    [signal] = signals(caplog, "BackupFailed")
    assert signal == {
        "service": "contoso-apim",
        "backupName": started.backup.backup_name,
        "operationId": operation_id,
        "error": error,
    }
    assert product.runtime.operations.lock_holder("contoso-apim") is None


def test_a_restore_whose_polls_are_refused_fails_with_the_refusal_at_its_timeout(
    product: Product, caplog: pytest.LogCaptureFixture
):
    backup = start_backup(product.runtime, "contoso-apim", Trigger.CLI)
    assert get_operation(backup.operation.operation_id).status_code == 200  # Succeeded
    product.stack.control.set_duration(10**6)
    operation = start_restore(
        product.runtime, RestoreRequest(backup.backup.backup_name, "contoso-standby"), Trigger.CLI
    )
    message = refuse_polls(product, "contoso-standby")
    assert get_operation(operation.operation_id).status_code == 202

    product.clock.now += timedelta(minutes=product.runtime.settings.operation_timeout_minutes + 1)
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        ended = body_of(get_operation(operation.operation_id))

    assert ended["status"] == "Failed"
    assert f"(403 AuthorizationFailed: {message})" in ended["error"]["message"]
    assert ended["error"]["message"].endswith(f"holds {POLL_ACTION} on contoso-standby")
    [signal] = signals(caplog, "RestoreFailed")
    assert signal["error"] == ended["error"]["message"]
    assert signal["sourceService"] == "contoso-apim"
