"""The per-request GraphQL context and the `Info` alias resolvers are typed with."""

from __future__ import annotations

import contextvars
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeAlias

import strawberry
from prometheus_client import Gauge
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from resolvers.access.auth import Principal
from resolvers.access.sockets import OpenSocket
from resolvers.core import metrics
from resolvers.core.errors import NotAuthenticated, ServiceUnavailable
from resolvers.core.loaders import Loaders
from resolvers.resources import Core
from resolvers.streaming.queue import JobQueue

# Set by the OperationScope extension: a websocket's context lives as long as the socket,
# so loaders must not hang off it.
current_loaders: contextvars.ContextVar[Loaders | None] = contextvars.ContextVar(
    "current_loaders", default=None
)


@dataclass
class Context:
    """What every field sees: the process's services and who is calling."""

    request: Request | WebSocket
    response: Response | WebSocket | None
    core: Core
    queue: JobQueue
    principal: Principal | None = None
    auth_error: NotAuthenticated | ServiceUnavailable | None = None
    # Strawberry stores the websocket connection_init payload here.
    connection_params: dict[str, Any] | None = None
    # The registered socket, on a websocket (schema.websocket).
    socket: OpenSocket | None = None

    @property
    def loaders(self) -> Loaders:
        """The DataLoaders of the running operation."""
        loaders = current_loaders.get()
        if loaders is None:
            loaders = Loaders()
            current_loaders.set(loaders)
        return loaders

    def subscription_slot(self, root: str) -> SubscriptionSlot:
        """Hold one of the caller's subscription slots while it is open (`async with`;
        RateLimited when none is free). The socket already re-checked the caller and counted
        the operation against their request rate, as it does for every operation
        (schema.websocket)."""
        principal = self.principal
        return SubscriptionSlot(
            None if principal is None else self.core.slots.hold(principal.user_id),
            metrics.ACTIVE_SUBSCRIPTIONS.labels(root),
        )

    def user(self) -> Principal | None:
        """The principal; re-raises a bad token's error so the client learns why."""
        if self.auth_error is not None:
            raise self.auth_error
        return self.principal


class SubscriptionSlot:
    """An open subscription's slot and its count in `ck_active_subscriptions`. A class, not
    a generator: every idle subscription keeps one."""

    __slots__ = ("_gauge", "_slot")

    def __init__(self, slot: AbstractContextManager[None] | None, gauge: Gauge) -> None:
        self._slot = slot
        self._gauge = gauge

    async def __aenter__(self) -> None:
        if self._slot is not None:
            self._slot.__enter__()
        self._gauge.inc()

    async def __aexit__(self, *exc: object) -> None:
        self._gauge.dec()
        if self._slot is not None:
            self._slot.__exit__(None, None, None)


def rate_subject(principal: Principal | None, request: Request | WebSocket) -> str:
    """Whose request bucket a call counts against: the key, the user, or the address."""
    if principal is not None:
        return f"key:{principal.key_id}" if principal.key_id else f"user:{principal.user_id}"
    return f"ip:{request.client.host if request.client else 'unknown'}"


Info: TypeAlias = strawberry.Info[Context, None]
