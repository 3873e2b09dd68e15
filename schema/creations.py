"""Creation fields: the tool catalog, reading, starting, cancelling and following creations."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable
from typing import Annotated, Any

import strawberry

from resolvers import creation as use_cases
from resolvers.errors import CreationKingError
from resolvers.models import Creation as CreationRow
from resolvers.tools import TOOLS
from schema.context import Info
from schema.types.creation import Creation, CreationConnection
from schema.types.errors import (
    AlreadyFinishedError,
    AuthError,
    ErrorType,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
    from_exception,
)
from schema.types.events import CreationEvent, from_event
from schema.types.tools import ReportInput, Tool, WriteInput

CreationId = Annotated[strawberry.ID, strawberry.argument(description="A creation's id.")]
WriteArg = Annotated[WriteInput, strawberry.argument(description="What to write.")]
ReportArg = Annotated[ReportInput, strawberry.argument(description="What to report on.")]

CreationResult = Annotated[
    Creation
    | InvalidInputError
    | AuthError
    | NotFoundError
    | AlreadyFinishedError
    | UnavailableError,
    strawberry.union("CreationResult", description="The creation, or why the call failed."),
]


async def _result(call: Awaitable[CreationRow]) -> Creation | ErrorType:
    try:
        return Creation.from_model(await call)
    except CreationKingError as exc:
        return from_exception(exc)


async def _start(info: Info, tool: str, payload: dict[str, Any], wait: bool) -> CreationRow:
    ctx = info.context
    row = await use_cases.start_creation(
        principal=ctx.user(),
        tool_name=tool,
        payload=payload,
        runner=ctx.core.runner,
        queue=ctx.queue,
    )
    if wait:
        row = await use_cases.wait_until_finished(row, feed=ctx.core.feed, queue=ctx.queue)
    return row


async def _stream(info: Info, tool: str, payload: dict[str, Any]) -> AsyncGenerator[Any, None]:
    ctx = info.context
    row = await _start(info, tool, payload, wait=False)
    events = await use_cases.follow_creation(
        principal=ctx.user(), creation_id=str(row.id), after=0, feed=ctx.core.feed, queue=ctx.queue
    )
    async with contextlib.aclosing(events):
        async for event in events:
            yield from_event(event)


@strawberry.type
class CreationQuery:
    @strawberry.field(description="Every creation tool, with where it runs.")
    def tools(self) -> list[Tool]:
        return [Tool.from_tool(tool) for tool in TOOLS.values()]

    @strawberry.field(description="One of your creations. Errors with NOT_FOUND otherwise.")
    async def creation(self, info: Info, id: CreationId) -> Creation:
        row = await use_cases.get_creation(principal=info.context.user(), creation_id=id)
        return Creation.from_model(row)

    @strawberry.field(description="Your creations, newest first.")
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
    ) -> CreationConnection:
        page = await use_cases.list_creations(
            principal=info.context.user(), first=first, after=after, tool=tool
        )
        return CreationConnection.from_page(page)


@strawberry.type
class CreationMutation:
    @strawberry.mutation(description="Start a piece of creative writing (FAST tool).")
    async def write(
        self,
        info: Info,
        input: WriteArg,
        wait: Annotated[
            bool, strawberry.argument(description="Return only once it has finished.")
        ] = False,
    ) -> CreationResult:
        return await _result(_start(info, "write", input.payload(), wait))

    @strawberry.mutation(
        description="Queue a long-form report on a worker (LONG tool); follow it with "
        "Subscription.creationEvents."
    )
    async def report(self, info: Info, input: ReportArg) -> CreationResult:
        return await _result(_start(info, "report", input.payload(), wait=False))

    @strawberry.mutation(
        description="Stop one of your creations wherever it runs; its stream ends with "
        "CreationCancelled carrying the usage so far."
    )
    async def cancel_creation(self, info: Info, id: CreationId) -> CreationResult:
        ctx = info.context
        return await _result(
            use_cases.cancel_creation(
                principal=ctx.user(),
                creation_id=id,
                runner=ctx.core.runner,
                queue=ctx.queue,
                feed=ctx.core.feed,
            )
        )


@strawberry.type
class CreationSubscription:
    @strawberry.subscription(description="Start a piece of writing and stream its events.")
    async def write(self, info: Info, input: WriteArg) -> AsyncGenerator[CreationEvent, None]:
        async for event in _stream(info, "write", input.payload()):
            yield event

    @strawberry.subscription(description="Queue a report and stream its events.")
    async def report(self, info: Info, input: ReportArg) -> AsyncGenerator[CreationEvent, None]:
        async for event in _stream(info, "report", input.payload()):
            yield event

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
        events = await use_cases.follow_creation(
            principal=ctx.user(), creation_id=id, after=after, feed=ctx.core.feed, queue=ctx.queue
        )
        async with contextlib.aclosing(events):
            async for event in events:
                yield from_event(event)
