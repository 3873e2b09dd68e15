"""Mutation and subscription fields for every tool, generated from the tool registry.

Each tool gets an input type made from its pydantic model (field descriptions included),
`Mutation.<tool>(input)` that starts it and `Subscription.<tool>(input)` that starts and
streams it. Fast tools' mutations also take `wait`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry
from pydantic import BaseModel
from strawberry.experimental.pydantic import input as pydantic_input
from strawberry.tools import create_type

from resolvers import creation as use_cases
from resolvers.access import audit
from resolvers.core.errors import CreationKingError
from resolvers.streaming.events import EventKind
from resolvers.tools import TOOLS, Mode, Tool
from schema.context import Info
from schema.fanout import shared_event
from schema.tool_inputs import input_type_name
from schema.tool_results import document_enums
from schema.types.creation import CreationResult, result_of
from schema.types.events import CreationEvent

WaitArg = Annotated[bool, strawberry.argument(description="Return only once it has finished.")]


_NESTED: dict[type[BaseModel], type] = {}


def nested_input(model: type[BaseModel]) -> type:
    """The GraphQL input type made from a pydantic model (made once, shared)."""
    if model not in _NESTED:
        _nested_inputs(model)
        _NESTED[model] = pydantic_input(
            model=model, all_fields=True, name=model.__name__, description=model.__doc__
        )(type(model.__name__, (), {}))
    return _NESTED[model]


def _nested_inputs(model: type[BaseModel]) -> None:
    """Register input types for pydantic models used as field types (e.g. a SWOT template)."""
    for info in model.model_fields.values():
        for candidate in (info.annotation, *typing.get_args(info.annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nested_input(candidate)


def _input_type(tool: Tool) -> type:
    document_enums(tool.enums)
    _nested_inputs(tool.input_model)
    name = input_type_name(tool.name)
    generated = type(name, (), {})
    return pydantic_input(
        model=tool.input_model, all_fields=True, name=name, description=tool.input_model.__doc__
    )(generated)


def _payload(value: Any, tool: Tool) -> dict[str, Any]:
    return {name: _plain(getattr(value, name)) for name in tool.input_model.model_fields}


def _plain(value: Any) -> Any:
    """Nested input objects as dicts, for the application layer's validation."""
    if hasattr(value, "__strawberry_definition__") and dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


async def start(info: Info, tool: str, payload: dict[str, Any], *, wait: bool) -> Any:
    """Start a creation as the caller (and wait for it, for `wait: true`)."""
    ctx = info.context
    row = await use_cases.start_creation(
        principal=ctx.user(),
        tool_name=tool,
        payload=payload,
        runner=ctx.core.runner,
        queue=ctx.queue,
        cache=ctx.core.cache,
        feed=ctx.core.feed,
        outputs=ctx.core.outputs,
        quota_per_day=ctx.core.settings.token_quota_per_day,
        shield=ctx.core.shield,
    )
    if wait:
        row = await use_cases.wait_until_finished(
            row, feed=ctx.core.feed, queue=ctx.queue, outputs=ctx.core.outputs
        )
    return row


def _mutation(tool: Tool, input_type: type) -> Any:
    described: Any = Annotated[input_type, strawberry.argument(description="The tool's input.")]

    if tool.mode is Mode.FAST:

        async def resolve_fast(self: Any, info: Info, input: Any, wait: bool = False) -> Any:
            return await result_of(start(info, tool.name, _payload(input, tool), wait=wait))

        resolve_fast.__annotations__ = {
            "info": Info,
            "input": described,
            "wait": WaitArg,
            "return": CreationResult,
        }
        resolver: Any = resolve_fast
        how = "Streams from the API process (FAST); `wait: true` returns it finished."
    else:

        async def resolve_long(self: Any, info: Info, input: Any) -> Any:
            return await result_of(start(info, tool.name, _payload(input, tool), wait=False))

        resolve_long.__annotations__ = {"info": Info, "input": described, "return": CreationResult}
        resolver = resolve_long
        how = "Queued on a worker (LONG); follow it with Subscription.creationEvents."
    resolver.__name__ = resolver.__qualname__ = tool.name  # create_type keys fields by it
    return strawberry.mutation(
        resolver=resolver, name=tool.name, description=f"Start: {tool.description} {how}"
    )


def _audit_start(principal: Any, tool: str, creation_id: object) -> None:
    """Record a started creation, without waiting for the row."""
    audit.record_soon(principal, tool, tool=tool, object_ids=[str(creation_id)])


def _subscription(tool: Tool, input_type: type) -> Any:
    described: Any = Annotated[input_type, strawberry.argument(description="The tool's input.")]

    async def resolve(self: Any, info: Info, input: Any) -> AsyncGenerator[Any, None]:
        ctx = info.context
        async with ctx.subscription_slot(tool.name):
            try:
                row = await start(info, tool.name, _payload(input, tool), wait=False)
            except CreationKingError as exc:
                await audit.record(ctx.principal, tool.name, outcome=exc.code, tool=tool.name)
                raise
            events = use_cases.follow_started(
                row, feed=ctx.core.feed, queue=ctx.queue, outputs=ctx.core.outputs
            )
            # The audit row is written once the stream is under way, not while the model
            # makes its first token (the insert cost about 1.7 ms of it in embedded mode).
            audited = False
            try:
                async with contextlib.aclosing(events):
                    async for event in events:
                        yield shared_event(event)
                        if not audited and event.kind is not EventKind.STARTED:
                            audited = True
                            _audit_start(ctx.principal, tool.name, row.id)
            finally:
                if not audited:
                    _audit_start(ctx.principal, tool.name, row.id)

    resolve.__annotations__ = {
        "info": Info,
        "input": described,
        "return": AsyncGenerator[CreationEvent, None],
    }
    resolve.__name__ = resolve.__qualname__ = tool.name  # create_type keys fields by it
    return strawberry.subscription(
        resolver=resolve,
        name=tool.name,
        description=f"Start and stream: {tool.description}",
    )


def build_tool_types() -> tuple[type, type]:
    """The generated (ToolMutation, ToolSubscription) root parts."""
    mutations, subscriptions = [], []
    for tool in TOOLS.values():
        input_type = _input_type(tool)
        mutations.append(_mutation(tool, input_type))
        subscriptions.append(_subscription(tool, input_type))
    return create_type("ToolMutation", mutations), create_type("ToolSubscription", subscriptions)
