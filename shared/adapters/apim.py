"""The API Management adapter: read a service, start a backup or restore, poll it once.

Nothing here waits for an operation: a start returns the Location URL to poll, and a
poll is a single GET. The SDK's LROPoller is only used with ``polling=False``, which
starts no thread (a polling thread would outlive the function invocation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.rules import arm
from shared.rules.armurl import OperationUrlRejected, arm_poll_url
from shared.rules.errors import ApimRequestFailed, OperationInProgress, StartUnconfirmed
from shared.rules.manifest import diagnostic_settings, service_settings
from shared.rules.naming import ServiceId
from shared.rules.service import (
    AccessType,
    PollResult,
    PollState,
    ServiceInfo,
    StorageTarget,
    arm_error_message,
)

if TYPE_CHECKING:
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.apimanagement import ApiManagementClient
    from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters

# azure.core is imported inside the functions that call Resource Manager: importing the
# function app must not load the SDKs (a lighter cold start). What Resource Manager's
# answers mean (throttles, refusals, operation states) is decided in shared.rules.arm.

log = logging.getLogger(__name__)

DIAGNOSTIC_SETTINGS_API = "2021-05-01-preview"
DIAGNOSTIC_SETTINGS_TIMEOUT = 10  # seconds, per connection and per read


class Apim:
    def __init__(
        self,
        client_for: Callable[[str], ApiManagementClient],
        endpoint: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client_for = client_for
        # Operation URLs are only ever followed on Resource Manager's own host: the bearer
        # token must not go wherever a (writable) table row happens to point.
        self._endpoint = endpoint.rstrip("/")
        # How a throttled start waits (tests and the simulated year replace it).
        self.sleep = sleep

    def _client(self, service: ServiceId) -> ApiManagementClient:
        return self._client_for(service.subscription_id)

    def describe(self, service: ServiceId) -> ServiceInfo:
        """Tier, state and workspace gateways: what the pre-checks need, in two GETs."""
        return self.inspect(service)[0]

    def inspect(self, service: ServiceId) -> tuple[ServiceInfo, dict[str, Any] | None]:
        """describe(), and the service's managed identities as Resource Manager answers
        them (``identity``: type, principalId, userAssignedIdentities): the doctor's read."""
        resource, raw = self._read_service(service)
        gateways = self._arm_call(
            service,
            lambda client: any(
                link.gateways
                for link in client.api_management_workspace_links.list_by_service(
                    service.resource_group, service.name
                )
            ),
        )
        info = ServiceInfo(
            sku=str(resource.sku.name),
            provisioning_state=str(resource.provisioning_state or ""),
            has_workspace_gateways=gateways,
            settings=service_settings(raw),
        )
        identity = raw.get("identity") if isinstance(raw, dict) else None
        return info, identity if isinstance(identity, dict) else None

    def settings_of(self, service: ServiceId) -> dict[str, Any]:
        """The service's manifest settings (allow-listed), in one GET."""
        return service_settings(self._read_service(service)[1])

    def provisioning_state(self, service: ServiceId) -> str:
        """The service's provisioning state (one GET): evidence for an unconfirmed start."""
        return str(self._read_service(service)[0].provisioning_state or "")

    def _read_service(self, service: ServiceId) -> tuple[Any, dict[str, Any]]:
        """The service's GET: the SDK's model and the JSON it came from."""
        answer: Any = self._arm_call(  # cls= makes it (model, json); the stubs say model
            service,
            lambda client: client.api_management_service.get(
                service.resource_group, service.name, cls=_model_and_json
            ),
        )
        model, raw = answer
        return model, raw

    def _arm_call[T](self, service: ServiceId, call: Callable[[ApiManagementClient], T]) -> T:
        """A read of Resource Manager, its failures turned into ApimRequestFailed."""
        from azure.core.exceptions import AzureError, HttpResponseError

        try:
            return call(self._client(service))
        except HttpResponseError as exc:
            raise ApimRequestFailed(
                f"Reading {service.name} from Resource Manager failed: {_reason(exc)}"
            ) from None
        except AzureError as exc:
            raise ApimRequestFailed(
                f"Resource Manager is unreachable: {type(exc).__name__}"
            ) from None

    def diagnostic_settings(self, service: ServiceId) -> list[dict[str, Any]]:
        """The service's Azure Monitor diagnostic settings (allow-listed), in one GET. Needs
        Microsoft.Insights/diagnosticSettings/read (Monitoring Reader), which the APIM
        roles do not hold: a refusal is an ApimRequestFailed for the caller to note."""
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        url = (
            f"{self._endpoint}{service.resource_id}/providers/Microsoft.Insights/"
            f"diagnosticSettings?api-version={DIAGNOSTIC_SETTINGS_API}"
        )
        try:
            # Called after APIM has accepted a backup, while the caller waits for the 202:
            # one short attempt, not the client's retries (a throttled or slow Insights
            # provider cost 30 s per start) nor azure-core's 300 s read timeout.
            response = self._client(service)._send_request(
                HttpRequest("GET", url),
                retry_total=0,
                connection_timeout=DIAGNOSTIC_SETTINGS_TIMEOUT,
                read_timeout=DIAGNOSTIC_SETTINGS_TIMEOUT,
            )
        except AzureError as exc:
            raise ApimRequestFailed(
                f"Resource Manager is unreachable: {type(exc).__name__}"
            ) from None
        if response.status_code != 200:
            raise ApimRequestFailed(arm_error_message(response.text(), response.status_code))
        try:
            answer = response.json()
        except ValueError:
            raise ApimRequestFailed("Resource Manager answered no JSON") from None
        return diagnostic_settings(answer)

    def try_diagnostic_settings(
        self, service: ServiceId
    ) -> tuple[list[dict[str, Any]] | None, str | None]:
        """The diagnostic settings, or None and why they could not be read."""
        try:
            return self.diagnostic_settings(service), None
        except ApimRequestFailed as exc:
            log.warning("Diagnostic settings of %s unreadable: %s", service.name, exc.message)
            return None, exc.message

    def start_backup(self, service: ServiceId, target: StorageTarget, backup_name: str) -> str:
        return self._start("begin_backup", service, target, backup_name)

    def start_restore(self, service: ServiceId, target: StorageTarget, backup_name: str) -> str:
        return self._start("begin_restore", service, target, backup_name)

    def _start(
        self, method: str, service: ServiceId, target: StorageTarget, backup_name: str
    ) -> str:
        """POST the operation and return the URL to poll (no waiting, no thread). A
        throttled POST is tried again as shared.rules.arm says; nothing else is."""
        from azure.core.exceptions import HttpResponseError

        parameters = _parameters(target, backup_name)
        begin = getattr(self._client(service).api_management_service, method)
        what = f"the {method.removeprefix('begin_')} of {service.name}"
        waited = 0.0
        for attempt in range(1, arm.START_TRIES + 1):
            try:
                location = _post(begin, service, parameters, what)
                break
            except HttpResponseError as exc:
                wait = _throttled(exc, service, what, attempt, waited)
                log.warning(
                    "Start of %s throttled (HTTP %s); trying again in %g s",
                    what,
                    exc.status_code,
                    wait,
                )
                self.sleep(wait)
                waited += wait
        try:
            return arm_poll_url(self._endpoint, location)
        except OperationUrlRejected as exc:
            # Accepted (202), but not a URL the product will ever follow.
            raise StartUnconfirmed(
                f"Resource Manager accepted {what} but answered an operation URL that was "
                f"rejected: {exc}"
            ) from None

    def poll(self, service: ServiceId, operation_url: str) -> PollResult:
        """Ask Resource Manager once how the operation behind ``operation_url`` is doing.

        Only the recorded URL's path and query are used, on ARM_ENDPOINT (shared.rules.armurl).
        """
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        try:
            url = arm_poll_url(self._endpoint, operation_url)
        except OperationUrlRejected as exc:
            error = f"The recorded operation URL was rejected: {exc}"
            return PollResult(PollState.FAILED, error=error, url_rejected=True)
        client = self._client(service)
        try:
            # One request: the next poll is the retry (a status call must answer quickly).
            response = client._send_request(HttpRequest("GET", url), retry_total=0)
        except AzureError as exc:
            log.warning("Polling %s failed: %s", service.name, type(exc).__name__)
            return PollResult(PollState.UNKNOWN, error=type(exc).__name__)
        retry_after = arm.poll_retry_after(response.headers.get("Retry-After"))
        status = response.status_code
        if status == 202:
            return PollResult(PollState.RUNNING, retry_after=retry_after)
        if status in (200, 201, 204):
            return arm.async_operation_state(response.text()) or PollResult(PollState.SUCCEEDED)
        if status in (401, 403):
            refusal = arm.refusal(response.text(), status)
            log.warning(
                "Resource Manager refused the status request for an operation on %s (%s); "
                "left running until the operation timeout",
                service.name,
                refusal,
            )
            return PollResult(
                PollState.UNKNOWN,
                error=f"HTTP {status}",
                retry_after=retry_after,
                refused=arm.refusal_advice(refusal, status, service),
            )
        if status in (404, 408, 429) or status >= 500:
            # Says nothing about the operation itself: a token or role glitch, throttling,
            # a new operation URL not yet known everywhere. The next poll (or, in the end,
            # the operation timeout) decides; a false Failed would hide a good backup.
            return PollResult(PollState.UNKNOWN, error=f"HTTP {status}", retry_after=retry_after)
        return PollResult(PollState.FAILED, error=arm_error_message(response.text(), status))


def _model_and_json(pipeline_response: Any, deserialized: Any, _headers: Any) -> tuple[Any, Any]:
    """The SDK's model and the JSON it came from: the manifest's allow-list is applied to
    the JSON itself, so a field the SDK does not know yet is still judged by it."""
    try:
        raw = pipeline_response.http_response.json()
    except ValueError:
        raw = {}
    return deserialized, raw if isinstance(raw, dict) else {}


def _location_of(pipeline_response: Any, _deserialized: Any, _headers: Any) -> str:
    response = pipeline_response.http_response
    location = response.headers.get("Location") or response.headers.get("Azure-AsyncOperation")
    if not location:
        raise StartUnconfirmed(
            f"API Management answered {response.status_code} with no operation URL to follow"
        )
    return str(location)


def _parameters(
    target: StorageTarget, backup_name: str
) -> ApiManagementServiceBackupRestoreParameters:
    from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters

    return ApiManagementServiceBackupRestoreParameters(
        storage_account=target.account,
        container_name=target.container,
        backup_name=backup_name,
        access_type=target.access_type.value,  # the SDK's default is AccessKey: always set it
        client_id=target.client_id if target.access_type is AccessType.USER_ASSIGNED else None,
        access_key=target.access_key if target.access_type is AccessType.ACCESS_KEY else None,
    )


def _post(
    begin: Callable[..., Any],
    service: ServiceId,
    parameters: ApiManagementServiceBackupRestoreParameters,
    what: str,
) -> str:
    """One POST of a start: the operation URL, or why there is none. An HTTP error
    answer is the caller's to judge (it may be a throttle worth another try)."""
    from azure.core.exceptions import AzureError, HttpResponseError, ServiceResponseError

    try:
        location: str = begin(
            service.resource_group,
            service.name,
            parameters,
            polling=False,
            cls=_location_of,
            # No automatic retry: a start that failed on the way back may have begun,
            # and a blind retry would start a second one (or meet APIM's 409 and lose
            # track of the first). Throttling is retried by the caller.
            retry_total=0,
        ).result()
    except HttpResponseError:
        raise
    except ServiceResponseError as exc:
        # Sent, but no answer (a dropped connection, a read timeout).
        raise StartUnconfirmed(
            f"No answer from Resource Manager to {what} ({type(exc).__name__}): "
            "it may or may not have started"
        ) from None
    except AzureError as exc:
        # Never sent (connection refused, DNS, TLS): nothing started.
        raise ApimRequestFailed(f"Resource Manager is unreachable: {type(exc).__name__}") from None
    return location


def _throttled(
    exc: HttpResponseError, service: ServiceId, what: str, attempt: int, waited: float
) -> float:
    """How long to wait before trying a refused start again; raises when it is not to be
    tried again (not a throttle, or the tries or the waiting are used up)."""
    if exc.status_code == 409 and arm.conflict_is_ambiguous(attempt):
        raise StartUnconfirmed(
            f"Resource Manager answered {what} with HTTP 409 (an operation is running) "
            f"after {attempt - 1} throttled tr{'y' if attempt == 2 else 'ies'}: an earlier "
            "try may have started it"
        ) from None
    if exc.status_code == 409:
        raise OperationInProgress(
            f"API Management refused: another operation is running on {service.name}"
        ) from None
    response = getattr(exc, "response", None)
    header = response.headers.get("Retry-After") if response is not None else None
    wait = arm.throttle_wait(exc.status_code, header, datetime.now(UTC))
    if wait is None and exc.status_code in arm.AMBIGUOUS_START_STATUSES:
        raise StartUnconfirmed(
            f"Resource Manager answered {what} with HTTP {exc.status_code}: "
            "it may or may not have started"
        ) from None
    if wait is None:
        raise ApimRequestFailed(f"API Management refused to start {what}: {_reason(exc)}") from None
    if not arm.may_try_again(attempt, waited, wait):
        raise ApimRequestFailed(
            f"Resource Manager throttled {what} {attempt} time(s) "
            f"(HTTP {exc.status_code}); gave up after {waited:g} s of waiting"
        ) from None
    return wait


def _reason(exc: HttpResponseError) -> str:
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "message", None):
        return f"{error.code}: {error.message}" if error.code else str(error.message)
    return f"HTTP {exc.status_code}" if exc.status_code else type(exc).__name__
