"""The audit log in the schema: every mutation is recorded; admins read the log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.extensions import FieldExtension
from tortoise.exceptions import IntegrityError

from resolvers.access import audit as use_cases
from resolvers.access.auth import require_account
from resolvers.access.throttle import Locked
from resolvers.core import models
from resolvers.core.errors import CreationKingError
from resolvers.tools import TOOLS
from schema.context import Info

_NESTED = ("upload", "key", "user", "creation")


class Audited(FieldExtension):
    """Records the mutation it is on: caller, object ids, outcome (OK or the error code)."""

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        ctx = info.context
        client = ctx.request.client.host if ctx.request.client else None
        try:
            result = await next_(source, info, **kwargs)
        except Locked as exc:
            # One entry when a sign-in lock begins; the refusals while it holds are only
            # counted (the next lock's entry says how many), so guessing cannot fill the log.
            if exc.began is not None:
                await use_cases.record(
                    ctx.principal,
                    info.field_name,
                    outcome=exc.code,
                    detail=exc.began,
                    client=client,
                )
            raise
        except CreationKingError as exc:
            await use_cases.record(ctx.principal, info.field_name, outcome=exc.code, client=client)
            raise
        except Exception as exc:
            if ctx.principal is not None and isinstance(exc, IntegrityError):
                # An insert naming a deleted account as owner: the account is gone.
                await require_account(ctx.principal.user_id)
            await use_cases.record(
                ctx.principal, info.field_name, outcome="INTERNAL", client=client
            )
            raise
        code = getattr(result, "code", None)
        ids = [str(kwargs["id"])] if "id" in kwargs else []
        ids += _ids_of(result)
        await use_cases.record(
            ctx.principal,
            info.field_name,
            outcome=code.value if code is not None else use_cases.OK,
            tool=info.field_name if info.field_name in TOOLS else None,
            object_ids=list(dict.fromkeys(ids)),
            client=client,
        )
        return result

    def resolve(
        self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any
    ) -> Any:  # pragma: no cover - every mutation is async
        raise TypeError("Audited only wraps async mutations")


def _ids_of(result: Any) -> list[str]:
    found = []
    if getattr(result, "id", None) is not None:
        found.append(str(result.id))
    for name in _NESTED:
        nested_id = getattr(getattr(result, name, None), "id", None)
        if nested_id is not None:
            found.append(str(nested_id))
    return found


@strawberry.type(description="One audit log entry.")
class AuditEntry:
    id: strawberry.ID = strawberry.field(description="Increasing entry number.")
    at: datetime = strawberry.field(description="When it happened (UTC).")
    actor_id: strawberry.ID | None = strawberry.field(description="The user; null: anonymous.")
    key_id: strawberry.ID | None = strawberry.field(description="The API key acting for them.")
    operation: str = strawberry.field(description="The mutation (or action) performed.")
    tool: str | None = strawberry.field(description="The creation tool involved, if any.")
    object_ids: list[str] = strawberry.field(description="Ids of the objects involved.")
    outcome: str = strawberry.field(description="OK, or the error code it ended with.")
    detail: str | None = strawberry.field(description="A short note (never user content).")
    client: str | None = strawberry.field(description="The caller's network address.")

    @classmethod
    def from_model(cls, row: models.AuditEntry) -> AuditEntry:
        return cls(
            id=strawberry.ID(str(row.id)),
            at=row.at,
            actor_id=strawberry.ID(str(row.actor_id)) if row.actor_id else None,
            key_id=strawberry.ID(str(row.key_id)) if row.key_id else None,
            operation=row.operation,
            tool=row.tool,
            object_ids=list(row.object_ids),
            outcome=row.outcome,
            detail=row.detail,
            client=row.client,
        )


@strawberry.type(description="A page of the audit log, newest first.")
class AuditPage:
    entries: list[AuditEntry] = strawberry.field(description="The entries of this page.")
    has_next_page: bool = strawberry.field(description="More entries follow.")
    end_cursor: str | None = strawberry.field(description="Pass as `after` to continue.")


@strawberry.input(description="Narrow the audit log; every field optional.")
class AuditFilter:
    actor_id: strawberry.ID | None = strawberry.field(default=None, description="One user.")
    operation: str | None = strawberry.field(default=None, description="One operation.")
    outcome: str | None = strawberry.field(default=None, description="OK or an error code.")
    tool: str | None = strawberry.field(default=None, description="One tool.")
    since: datetime | None = strawberry.field(default=None, description="At or after (UTC).")
    until: datetime | None = strawberry.field(default=None, description="Before (UTC).")


@strawberry.type
class AuditQuery:
    @strawberry.field(
        description="The audit log, newest first. Admins only: null with a FORBIDDEN error "
        "otherwise (UNAUTHENTICATED when signed out)."
    )
    async def audit_log(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description="Page size, 1 to 100.")] = 50,
        after: Annotated[
            str | None, strawberry.argument(description="endCursor of the previous page.")
        ] = None,
        where: Annotated[AuditFilter | None, strawberry.argument(description="Filters.")] = None,
    ) -> AuditPage | None:
        chosen = where or AuditFilter()
        page = await use_cases.list_entries(
            principal=info.context.user(),
            first=first,
            after=after,
            where=use_cases.AuditFilter(
                actor_id=chosen.actor_id,
                operation=chosen.operation,
                outcome=chosen.outcome,
                tool=chosen.tool,
                since=chosen.since,
                until=chosen.until,
            ),
        )
        return AuditPage(
            entries=[AuditEntry.from_model(row) for row in page.items],
            has_next_page=page.has_next,
            end_cursor=page.end_cursor,
        )
