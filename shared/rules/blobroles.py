"""The doctor's judgement of a blob data role: does APIM's identity hold one that covers
the backup container? Role assignments as Resource Manager lists them
(``$filter=assignedTo('<principal>')``: at, above or below the scope)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.rules.doctor import BLOB_ROLES, Finding, Level

# Built-in role definition ids (the GUID at the end of roleDefinitionId).
WRITE_ROLES = {
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
}
READ_ROLES = {**WRITE_ROLES, "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader"}


def covers(scope: str, target: str) -> bool:
    """An assignment at ``scope`` applies to ``target`` (the same or a parent scope). An
    empty scope (an assignment listed without one) is no scope and covers nothing; ``/``,
    the root scope, covers every scope."""
    if not scope:
        return False
    scope, target = scope.rstrip("/").lower(), target.rstrip("/").lower()
    return target == scope or target.startswith(scope + "/")


def blob_role(
    service: str,
    principal: str,
    container_scope: str,
    assignments: Sequence[Mapping[str, Any]],
    may_write: bool,
) -> Finding:
    """A source's identity needs a role that writes blobs; a restore target's only one
    that reads them."""
    roles = WRITE_ROLES if may_write else READ_ROLES
    check = f"{service} blob role"
    for item in assignments:
        props = item.get("properties") or item
        role = str(props.get("roleDefinitionId") or "").rstrip("/").rsplit("/", 1)[-1].lower()
        if role in roles and covers(str(props.get("scope") or ""), container_scope):
            condition = ", with a condition" if props.get("condition") else ""
            return Finding(Level.OK, check, f"{roles[role]} at {props.get('scope')}{condition}")
    need = BLOB_ROLES if may_write else "blob data role"
    action = "write" if may_write else "read"
    return Finding(
        Level.FAIL,
        check,
        f"its identity (principal {principal}) holds no {need} on the container: APIM cannot "
        f"{action} backups there",
        f"azd provision (infra/ assigns it, with the backup-name condition), or: az role "
        f"assignment create --assignee-object-id {principal} --assignee-principal-type "
        f'ServicePrincipal --role "{BLOB_ROLES}" --scope {container_scope}',
    )


def role_assignment_not_checked(
    service: str, principal: str | None, container_scope: str | None, why: str
) -> Finding:
    """The blob role of APIM's identity on the container could not be read (no account
    ID, or no Microsoft.Authorization/roleAssignments/read): the command that checks it."""
    scope = container_scope or "<storage account id>/blobServices/default/containers/<container>"
    return Finding(
        Level.WARN,
        f"{service} blob role",
        f"not checked: {why}",
        f"az role assignment list --assignee {principal or '<principal id>'} --scope {scope} "
        f"--include-inherited --query \"[].roleDefinitionName\" -o tsv  (expect '{BLOB_ROLES}')",
    )
