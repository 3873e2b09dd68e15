"""The audit log: who did what, to which objects, from where, and how it ended.

Entries are only ever inserted (the database refuses UPDATE and DELETE on the table). They
name operations, tools, object ids and outcome codes, never user content or secrets.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from resolvers.access.auth import Principal, require_admin
from resolvers.core.errors import InvalidInput
from resolvers.core.models import AuditEntry

log = logging.getLogger(__name__)
MAX_PAGE = 100
OK = "OK"


async def record(
    principal: Principal | None,
    operation: str,
    *,
    outcome: str = OK,
    tool: str | None = None,
    object_ids: Sequence[str] = (),
    detail: str | None = None,
    client: str | None = None,
) -> None:
    """Append one entry; a failure to write is logged loudly but does not undo the action."""
    try:
        await AuditEntry.create(
            actor_id=principal.user_id if principal else None,
            key_id=principal.key_id if principal else None,
            operation=operation[:64],
            tool=tool,
            object_ids=[str(i)[:64] for i in object_ids][:20],
            outcome=outcome[:40],
            detail=detail[:300] if detail else None,
            client=(client or (principal.client if principal else None) or None),
        )
    except Exception:
        log.exception("could not write the audit entry for %s (%s)", operation, outcome)


_PENDING: set[asyncio.Task[None]] = set()


def record_soon(principal: Principal | None, operation: str, **fields: Any) -> None:
    """`record` without waiting for it: for paths where every millisecond shows (a stream's
    first token). The entry is written a moment later; failures are logged the same way."""
    task = asyncio.get_running_loop().create_task(record(principal, operation, **fields))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


@dataclass(frozen=True)
class AuditFilter:
    """What an admin narrows the log to; every field optional."""

    actor_id: str | None = None
    operation: str | None = None
    outcome: str | None = None
    tool: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditPage:
    """Entries newest first; `end_cursor` continues after the last one."""

    items: list[AuditEntry]
    has_next: bool
    end_cursor: str | None


async def list_entries(
    *, principal: Principal | None, first: int, after: str | None, where: AuditFilter
) -> AuditPage:
    """A page of the log for an admin, newest first."""
    require_admin(principal)
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInput(f"first: must be between 1 and {MAX_PAGE}", field="first")
    query = AuditEntry.all()
    if where.actor_id is not None:
        try:
            query = query.filter(actor_id=uuid.UUID(where.actor_id))
        except ValueError:
            raise InvalidInput("actorId: not a user id", field="actorId") from None
    for field, value in (("operation", where.operation), ("outcome", where.outcome)):
        if value is not None:
            query = query.filter(**{field: value})
    if where.tool is not None:
        query = query.filter(tool=where.tool)
    if where.since is not None:
        query = query.filter(at__gte=where.since)
    if where.until is not None:
        query = query.filter(at__lt=where.until)
    if after is not None:
        if not after.isdigit():
            raise InvalidInput("after: not a cursor from this list", field="after")
        query = query.filter(id__lt=int(after))
    rows = await query.order_by("-id").limit(first + 1)
    items = rows[:first]
    return AuditPage(
        items=items,
        has_next=len(rows) > first,
        end_cursor=str(items[-1].id) if items else None,
    )
