"""Rendering an event once for every subscriber of this process that asked the same thing.

A thousand sockets watching one creation receive the same events, mostly through the same
subscription document. Executing the selection set once per event per subscriber was the
largest cost of fanning out (bench/README.md). So:

- `shared_event(event)` gives every subscriber's stream the very same schema object for the
  same log entry (a bounded cache keyed by the entry's value);
- `SharedEventExecutor` (the schema's graphql-core executor) executes a subscription event
  once per (event object, parsed operation, variables) and hands the others that result.

Only events whose fields are pure data are shared: `CreationStarted`, `TokenDelta` and
`Progress`. Terminal events resolve the finished creation through the subscriber's own
context (loaders, principal) and run for each subscriber, once per stream. A result with
errors is never reused. The parse cache (schema/extensions.py) gives every subscriber of one
query string the same document, which is what makes the operation part of the key match.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Hashable
from functools import lru_cache
from typing import Any, ClassVar

from graphql import ExecutionResult, OperationType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from resolvers.streaming.events import Event
from schema.types.events import (
    CreationEvent,
    CreationStarted,
    Progress,
    TokenDelta,
    from_event,
)

SHARED_EVENTS = 1_024  # distinct log entries kept: far more than are in flight at once
SHARED_RESULTS = 1_024  # (event, operation, variables) results kept
_PURE = (CreationStarted, TokenDelta, Progress)
_Key = tuple[int, int, Hashable]


@lru_cache(maxsize=SHARED_EVENTS)
def shared_event(event: Event) -> CreationEvent:
    """The schema object of a log entry, the same object for every equal entry."""
    return from_event(event)


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, executing a pure subscription event once per operation."""

    # (payload, operation, its result or the execution in flight)
    _results: ClassVar[OrderedDict[_Key, tuple[object, object, Any]]] = OrderedDict()

    def execute_operation(self, serially: bool | None = None) -> Any:
        payload = self.root_value
        if (
            not isinstance(payload, _PURE)
            or self.operation.operation is not OperationType.SUBSCRIPTION
        ):
            return super().execute_operation(serially)
        variables = _frozen(self.variable_values.coerced)
        if variables is None:
            return super().execute_operation(serially)
        key: _Key = (id(payload), id(self.operation), variables)
        cached = self._results.get(key)
        # Ids are only unique among live objects: the entry holds both and must match them.
        if cached is not None and cached[0] is payload and cached[1] is self.operation:
            shared = cached[2]
            return _shared(shared) if isinstance(shared, asyncio.Future) else shared
        result = super().execute_operation(serially)
        if isinstance(result, Awaitable):
            # Asynchronous (a resolve middleware, as when tracing): the subscribers woken by
            # the same event run together, so they share the execution in flight.
            pending = asyncio.ensure_future(result)
            pending.add_done_callback(lambda done: self._forget_if_failed(key, done))
            self._remember(key, payload, pending)
            return _shared(pending)
        if isinstance(result, ExecutionResult) and not result.errors:
            self._remember(key, payload, result)
        return result

    def _remember(self, key: _Key, payload: object, result: Any) -> None:
        results = SharedEventExecutor._results
        results[key] = (payload, self.operation, result)
        if len(results) > SHARED_RESULTS:
            results.popitem(last=False)

    def _forget_if_failed(self, key: _Key, done: asyncio.Future[Any]) -> None:
        failed = done.cancelled() or done.exception() is not None or done.result().errors
        if failed and key in self._results and self._results[key][2] is done:
            del self._results[key]


async def _shared(pending: asyncio.Future[Any]) -> Any:
    # Shielded: one subscriber leaving must not cancel the execution the others wait for.
    return await asyncio.shield(pending)


def _frozen(values: dict[str, Any]) -> Hashable | None:
    """The variables as a hashable key; None when one is not a plain scalar."""
    items = []
    for name, value in values.items():
        if not isinstance(value, str | int | float | bool | None):
            return None
        items.append((name, value))
    return tuple(sorted(items))
