"""Creation fields: the tool catalog, reading, starting, cancelling and following creations."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from resolvers import creation as use_cases
from resolvers.tools import TOOLS
from schema.context import Info
from schema.fanout import shared_event
from schema.types.creation import Creation, CreationConnection, CreationResult, result_of
from schema.types.events import CreationEvent
from schema.types.tools import Tool

CreationId = Annotated[strawberry.ID, strawberry.argument(description="A creation's id.")]


@strawberry.type
class CreationQuery:
    @strawberry.field(description="Every creation tool, with where it runs.")
    def tools(self) -> list[Tool]:
        return [Tool.from_tool(tool) for tool in TOOLS.values()]

    @strawberry.field(
        description="One of your creations; null with a NOT_FOUND error otherwise "
        "(UNAUTHENTICATED when signed out). The query's other fields are unaffected."
    )
    async def creation(self, info: Info, id: CreationId) -> Creation | None:
        row = await use_cases.get_creation(principal=info.context.user(), creation_id=id)
        return Creation.from_model(row)

    @strawberry.field(
        description="Your creations, newest first (an admin's: everyone's); null with an "
        "UNAUTHENTICATED or FORBIDDEN error when the caller may not list them."
    )
    async def creations(
        self,
        info: Info,
        first: Annotated[
            int, strawberry.argument(description=f"Page size, 1 to {use_cases.MAX_PAGE}.")
        ] = 20,
        after: Annotated[
            str | None, strawberry.argument(description="endCursor of the previous page.")
        ] = None,
        tool: Annotated[
            str | None, strawberry.argument(description="Only creations of this tool.")
        ] = None,
        owner_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="Admins: only this user's creations (admins see everyone's "
                "otherwise). FORBIDDEN for others."
            ),
        ] = None,
    ) -> CreationConnection | None:
        page = await use_cases.list_creations(
            principal=info.context.user(), first=first, after=after, tool=tool, owner_id=owner_id
        )
        return CreationConnection.from_page(page)


@strawberry.type
class CreationMutation:
    @strawberry.mutation(
        description="Stop one of your creations wherever it runs; its stream ends with "
        "CreationCancelled carrying the usage so far. Answers the creation once the cancel "
        "took effect: CANCELLED with its final usage and output (or the ending it reached "
        "first). It waits for that up to half a producer lease (5 s by default), then answers "
        "CANCELLING."
    )
    async def cancel_creation(self, info: Info, id: CreationId) -> CreationResult:
        ctx = info.context
        return await result_of(
            use_cases.cancel_creation(
                principal=ctx.user(),
                creation_id=id,
                runner=ctx.core.runner,
                queue=ctx.queue,
                feed=ctx.core.feed,
                outputs=ctx.core.outputs,
            )
        )


@strawberry.type
class CreationSubscription:
    @strawberry.subscription(
        description="Events of one of your creations: every event with seq > `after` first "
        "(replayed from the log), then the live tail, ending with the terminal event."
    )
    async def creation_events(
        self,
        info: Info,
        id: CreationId,
        after: Annotated[
            int, strawberry.argument(description="Last seq you have; 0 replays everything.")
        ] = 0,
    ) -> AsyncGenerator[CreationEvent, None]:
        ctx = info.context
        async with ctx.subscription_slot("creationEvents"):
            events = await use_cases.follow_creation(
                principal=ctx.user(),
                creation_id=id,
                after=after,
                feed=ctx.core.feed,
                queue=ctx.queue,
                outputs=ctx.core.outputs,
            )
            async with contextlib.aclosing(events):
                async for event in events:
                    yield shared_event(event)
