"""The function app: a table of contents. Each trigger parses its input, calls one
function of the core (``shared``), and turns the core's refusals into responses.

Loading this module does only what the decorators need: the worker imports it at every
cold start, from a read-only package where Python compiles the product's modules anew
each time. So each trigger imports the core module it calls on its first run (Python
caches it for the next), and the SDKs load later still, on first use (issue 9;
docs/performance.md, "Cold start").
"""

from __future__ import annotations

import logging
import os

import azure.functions as func

from shared.api import auth
from shared.api.http import (
    accepted,
    bool_value,
    handle,
    json_response,
    query_value,
    read_json,
    refuse_query,
    string_field,
)
from shared.runtime import get_runtime

log = logging.getLogger(__name__)
# The SDKs log every request at INFO; keep the app's logs to what an operator reads.
logging.getLogger("azure").setLevel(logging.WARNING)

# Function keys, or anonymous behind App Service authentication (API_AUTH=entra): the
# decorators need the level now, so it is read from the environment at import.
app = func.FunctionApp(http_auth_level=auth.http_auth_level(os.environ))


# Timers ---------------------------------------------------------------------------------


@app.timer_trigger(schedule="%BACKUP_SCHEDULE%", arg_name="timer", run_on_startup=False)
def scheduled_backup(timer: func.TimerRequest) -> None:
    from shared.jobs import schedule

    if timer.past_due:
        # The host runs a missed schedule once, not once per missed tick; say so.
        log.warning("scheduled_backup is running late (past due)")
    started = schedule.scheduled_backups(get_runtime())
    log.info("scheduled_backup started %d backup(s)", len(started))


@app.function_name("housekeeping")
@app.timer_trigger(schedule="%HOUSEKEEPING_SCHEDULE%", arg_name="timer", run_on_startup=False)
def housekeeping_timer(timer: func.TimerRequest) -> None:
    from shared.jobs import housekeeping

    report = housekeeping.run(get_runtime())
    log.info("housekeeping: %s", report.summary())


@app.timer_trigger(schedule="%STANDBY_SCHEDULE%", arg_name="timer", run_on_startup=False)
def standby_sync(timer: func.TimerRequest) -> None:
    from shared.jobs import restores

    started = restores.standby_sync(get_runtime())
    log.info("standby_sync started %d restore(s)", len(started))


# Configuration changes: Event Grid -------------------------------------------------------


@app.function_name("config_changed")
@app.event_grid_trigger(arg_name="event")
def config_changed(event: func.EventGridEvent) -> None:
    """One Event Grid event (APIM's or Resource Manager's system topic): a change of a
    configured service is counted for a debounced backup; anything else is logged and
    dropped, never raised (Event Grid would retry it for a day). docs/change-backups.md"""
    from shared.jobs import changes

    result = changes.receive_event(get_runtime(), event)
    log.info("config_changed: event %s: %s", result.event_id or "-", result.verdict.value)


# Backups --------------------------------------------------------------------------------


@app.route(route="backups", methods=["POST"])
def start_backup(req: func.HttpRequest) -> func.HttpResponse:
    from shared.jobs import backups, operations
    from shared.rules.model import Trigger

    def action() -> func.HttpResponse:
        body = read_json(req, optional=True, fields=("service",))
        service = string_field(
            body, "service", required=False, max_length=backups.MAX_SERVICE_REF_LENGTH
        )
        started = backups.start_backup(get_runtime(), service, Trigger.HTTP)
        progress = operations.Progress(started.operation, operations.retry_after(started.operation))
        return accepted(req, progress)

    return handle(action, req)


@app.route(route="backups", methods=["GET"])
def list_backups(req: func.HttpRequest) -> func.HttpResponse:
    from shared.jobs import backups

    def action() -> func.HttpResponse:
        runtime = get_runtime()
        rows = backups.list_backups(
            runtime,
            service_ref=query_value(req, "service", backups.MAX_SERVICE_REF_LENGTH),
            status=query_value(req, "status"),
            include_expired=bool_value(query_value(req, "includeExpired"), "includeExpired"),
        )
        now = runtime.clock()
        return json_response({"value": [r.to_api(now) for r in rows]})

    return handle(action, req)


@app.route(route="backups/{backupName}", methods=["GET"])
def get_backup(req: func.HttpRequest) -> func.HttpResponse:
    from shared.jobs import backups

    def action() -> func.HttpResponse:
        name = req.route_params.get("backupName", "")
        return json_response(backups.backup_details(get_runtime(), name))

    return handle(action, req)


@app.route(route="operations/{operationId}", methods=["GET"])
def get_operation(req: func.HttpRequest) -> func.HttpResponse:
    from shared.jobs import operations

    def action() -> func.HttpResponse:
        progress = operations.get_operation(get_runtime(), req.route_params.get("operationId", ""))
        return accepted(req, progress)

    return handle(action, req)


# Restores: a function of its own, so that its key is its own --------------------------


@app.route(route="restores", methods=["POST"])
def start_restore(req: func.HttpRequest) -> func.HttpResponse:
    from shared.jobs import operations, restores
    from shared.rules.model import Trigger

    def action() -> func.HttpResponse:
        refuse_query(req, "dryRun", "'dryRun' goes in the request body of POST /api/restores")
        request = restores.RestoreRequest.from_body(read_json(req))
        runtime = get_runtime()
        if request.dry_run:
            report = restores.dry_run(runtime, request)
            return json_response(report, 200)
        started = restores.start_restore(runtime, request, Trigger.HTTP)
        return accepted(req, operations.Progress(started, operations.retry_after(started)))

    return handle(action, req, role=auth.RESTORE_ROLE)


# Retention and health -------------------------------------------------------------------


@app.route(route="prune", methods=["POST"])
def prune(req: func.HttpRequest) -> func.HttpResponse:
    from shared.jobs import housekeeping

    def action() -> func.HttpResponse:
        read_json(req, optional=True, fields=())  # dryRun is a query parameter, not a field
        dry_run = bool_value(req.params.get("dryRun"), "dryRun")
        return json_response(housekeeping.prune_now(get_runtime(), dry_run=dry_run))

    return handle(action, req)


@app.route(route="health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared.jobs.health import report

    def action() -> func.HttpResponse:
        answer = report(get_runtime())
        return json_response(answer.body, 200 if answer.healthy else 503)

    return handle(action, req)
