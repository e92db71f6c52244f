"""Refusals and failures the core raises; the HTTP layer turns each into an ARM-shaped error.

Each class fixes its HTTP status and error code, so a route never decides them itself.
Messages name the problem and never carry a secret.
"""

from __future__ import annotations


class ProductError(Exception):
    status: int = 500
    code: str = "InternalError"
    # Seconds a caller should wait before trying again (a Retry-After header), if any.
    retry_after: int | None = None

    def __init__(self, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # ARM's optional ``target``: the parameter or dependency the error is about.
        self.target = target

    def to_body(self) -> dict[str, dict[str, str]]:
        error = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        return {"error": error}


class BadRequest(ProductError):
    status, code = 400, "BadRequest"


class ServiceNotConfigured(ProductError):
    status, code = 404, "ServiceNotConfigured"


class BackupNotFound(ProductError):
    status, code = 404, "BackupNotFound"


class OperationNotFound(ProductError):
    status, code = 404, "OperationNotFound"


class TargetNotAllowed(ProductError):
    status, code = 403, "TargetNotAllowed"


class BackupNotSucceeded(ProductError):
    status, code = 409, "BackupNotSucceeded"


class BackupExpired(ProductError):
    status, code = 410, "BackupExpired"


class UnsupportedSku(ProductError):
    status, code = 409, "UnsupportedSku"


class SkuMismatch(ProductError):
    status, code = 409, "SkuMismatch"


class WorkspaceGatewaysPresent(ProductError):
    status, code = 409, "WorkspaceGatewaysPresent"


class CorsEnabled(ProductError):
    status, code = 409, "CorsEnabled"


class OperationInProgress(ProductError):
    status, code = 409, "OperationInProgress"


class ApimRequestFailed(ProductError):
    """APIM (Resource Manager) refused or failed a request we had every reason to send."""

    status, code = 502, "ApimRequestFailed"


class BackupBlobMissing(ProductError):
    status, code = 409, "BackupBlobMissing"


class BackupNameUnavailable(ProductError):
    """Every name in a minute is taken: a clock or ledger problem, not a busy service."""

    status, code = 503, "BackupNameUnavailable"


class DependencyUnavailable(ProductError):
    """Storage or Resource Manager could not be used: the caller should try again later.
    ``target`` is ``storage`` or ``resourceManager``; the message never carries a URL."""

    status, code = 503, "DependencyUnavailable"
    retry_after = 30

    def __init__(self, dependency: str, cause: str) -> None:
        names = {"storage": "storage", "resourceManager": "Resource Manager"}
        super().__init__(
            f"{names.get(dependency, dependency)} cannot be reached: {cause}", dependency
        )


class Unauthenticated(ProductError):
    """API_AUTH=entra and no authenticated caller reached the app (shared/api/auth.py)."""

    status, code = 401, "Unauthenticated"


class RestoreRoleRequired(ProductError):
    """API_AUTH=entra and the caller lacks the ApimBackup.Restore app role."""

    status, code = 403, "RestoreRoleRequired"


class StartUnconfirmed(ApimRequestFailed):
    """A start's answer was lost or ambiguous (500, 502, 504, 503 without Retry-After, a
    dropped connection, a timeout): APIM may or may not have begun. Never retried blind;
    the operation is recorded as unconfirmed and settled later from evidence."""
