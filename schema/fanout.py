"""Rendering an event once for every subscriber of this process that asked the same thing.

A thousand sockets watching one creation receive the same events, mostly through the same
subscription document. Executing the selection set once per event per subscriber was the
largest cost of fanning out (bench/README.md). So:

- `shared_event(event)` gives every subscriber's stream the very same schema object for the
  same log entry (a bounded cache keyed by the entry's value);
- `SharedEventExecutor` (the schema's graphql-core executor) executes a subscription event
  once per (event object, parsed operation, variables) and hands the others that result.

Only results that are pure data are shared: those of `CreationStarted`, `TokenDelta` and
`Progress`, and of the terminal events when the operation selects no `creation` field
anywhere (that field resolves the finished creation through the subscriber's own context:
loaders, principal; an operation that selects it runs each terminal event per subscriber,
once per stream). A result with errors is never reused. The parse cache
(schema/extensions.py) gives every subscriber of one query string the same document, which
is what makes the operation part of the key match.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Hashable
from functools import lru_cache
from typing import Any, ClassVar

from graphql import ExecutionResult, FieldNode, OperationType, SelectionSetNode
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from resolvers.streaming.events import Event
from schema.types.events import (
    CreationCancelled,
    CreationCompleted,
    CreationEvent,
    CreationFailed,
    CreationStarted,
    Progress,
    TokenDelta,
    from_event,
)

SHARED_EVENTS = 1_024  # distinct log entries kept: far more than are in flight at once
SHARED_RESULTS = 1_024  # (event, operation, variables) results kept
_PURE = (CreationStarted, TokenDelta, Progress)
_ENDINGS = (CreationCompleted, CreationFailed, CreationCancelled)
_CONTEXTUAL = "creation"  # the only field of an event that reads the subscriber's context
_Key = tuple[int, int, Hashable]
_UNSEEN = object()


@lru_cache(maxsize=SHARED_EVENTS)
def shared_event(event: Event) -> CreationEvent:
    """The schema object of a log entry, the same object for every equal entry."""
    return from_event(event)


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, executing a pure subscription event once per operation."""

    # (payload, operation, its result or the execution in flight)
    _results: ClassVar[OrderedDict[_Key, tuple[object, object, Any]]] = OrderedDict()

    def build_per_event_executor(self, payload: Any) -> Any:
        # graphql-core copies this executor for every event of every subscriber; a
        # subscriber whose result another one already made takes it without the copy.
        key = self._key(payload)
        shared = self._shared(key, payload) if key is not None else None
        if shared is not None:
            return _Executed(shared)
        return super().build_per_event_executor(payload)

    def execute_operation(self, serially: bool | None = None) -> Any:
        payload = self.root_value
        key = self._key(payload)
        if key is None:
            return super().execute_operation(serially)
        shared = self._shared(key, payload)
        if shared is not None:
            return _Executed(shared).execute_operation(serially)
        result = super().execute_operation(serially)
        if isinstance(result, Awaitable):
            # Asynchronous (a resolve middleware, as when tracing): the subscribers woken by
            # the same event run together, so they share the execution in flight.
            pending = asyncio.ensure_future(result)
            pending.add_done_callback(lambda done: self._forget_if_failed(key, done))
            self._remember(key, payload, pending)
            return _awaited(pending)
        if isinstance(result, ExecutionResult) and not result.errors:
            self._remember(key, payload, result)
        return result

    def _key(self, payload: object) -> _Key | None:
        """The key of a pure subscription event's result; None when it is not shared."""
        if self.operation.operation is not OperationType.SUBSCRIPTION:
            return None
        if not isinstance(payload, _PURE) and not (
            isinstance(payload, _ENDINGS) and not self._reads_context()
        ):
            return None
        variables = self.__dict__.get("_frozen_variables", _UNSEEN)
        if variables is _UNSEEN:
            # Once per subscription: the per-event executors are copies of this one.
            variables = self._frozen_variables = _frozen(self.variable_values.coerced)
        return None if variables is None else (id(payload), id(self.operation), variables)

    def _reads_context(self) -> bool:
        """Whether the operation selects `creation` anywhere (then its terminal events are
        executed per subscriber). Remembered per parsed operation."""
        operation = self.operation
        known = _READS_CONTEXT.get(id(operation))
        if known is not None and known[0] is operation:
            return known[1]
        fragments = (f.definition.selection_set for f in self.fragments.values())
        sets = [operation.selection_set, *fragments]
        reads = any(_selects(selection_set, _CONTEXTUAL) for selection_set in sets)
        _READS_CONTEXT[id(operation)] = (operation, reads)
        if len(_READS_CONTEXT) > SHARED_RESULTS:
            _READS_CONTEXT.pop(next(iter(_READS_CONTEXT)))
        return reads

    def _shared(self, key: _Key, payload: object) -> Any:
        """The result (or execution in flight) made for `key`, if any."""
        cached = self._results.get(key)
        # Ids are only unique among live objects: the entry holds both and must match them.
        if cached is not None and cached[0] is payload and cached[1] is self.operation:
            return cached[2]
        return None

    def _remember(self, key: _Key, payload: object, result: Any) -> None:
        results = SharedEventExecutor._results
        results[key] = (payload, self.operation, result)
        if len(results) > SHARED_RESULTS:
            results.popitem(last=False)

    def _forget_if_failed(self, key: _Key, done: asyncio.Future[Any]) -> None:
        failed = done.cancelled() or done.exception() is not None or done.result().errors
        if failed and key in self._results and self._results[key][2] is done:
            del self._results[key]


class _Executed:
    """Stands in for a per-event executor whose result was made for another subscriber."""

    __slots__ = ("_result",)

    def __init__(self, result: Any) -> None:
        self._result = result

    def execute_operation(self, serially: bool | None = None) -> Any:
        shared = self._result
        return _awaited(shared) if isinstance(shared, asyncio.Future) else shared


async def _awaited(pending: asyncio.Future[Any]) -> Any:
    # Shielded: one subscriber leaving must not cancel the execution the others wait for.
    return await asyncio.shield(pending)


# id(operation) -> (the operation, whether it selects `creation`); bounded like the results
_READS_CONTEXT: dict[int, tuple[object, bool]] = {}


def _selects(selection_set: SelectionSetNode | None, name: str) -> bool:
    """Whether a field called `name` is selected anywhere under `selection_set` (inline
    fragments included; named fragments are searched on their own)."""
    if selection_set is None:
        return False
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode) and selection.name.value == name:
            return True
        if _selects(getattr(selection, "selection_set", None), name):
            return True
    return False


def _frozen(values: dict[str, Any]) -> Hashable | None:
    """The variables as a hashable key; None when one is not a plain scalar."""
    items = []
    for name, value in values.items():
        if not isinstance(value, str | int | float | bool | None):
            return None
        items.append((name, value))
    return tuple(sorted(items))
