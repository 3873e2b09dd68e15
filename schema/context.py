"""The per-request GraphQL context and the `Info` alias resolvers are typed with."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import strawberry
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

    @contextlib.asynccontextmanager
    async def subscription_slot(self, root: str) -> AsyncIterator[None]:
        """Hold one of the caller's subscription slots while it is open (RateLimited when
        none is free). The socket already re-checked the caller and counted the operation
        against their request rate, as it does for every operation (schema.websocket)."""
        gauge = metrics.ACTIVE_SUBSCRIPTIONS.labels(root)
        slot = (
            contextlib.nullcontext()
            if self.principal is None
            else self.core.slots.hold(self.principal.user_id)
        )
        with slot:  # no ExitStack: every idle subscription keeps what this holds
            gauge.inc()
            try:
                yield
            finally:
                gauge.dec()

    def user(self) -> Principal | None:
        """The principal; re-raises a bad token's error so the client learns why."""
        if self.auth_error is not None:
            raise self.auth_error
        return self.principal


def rate_subject(principal: Principal | None, request: Request | WebSocket) -> str:
    """Whose request bucket a call counts against: the key, the user, or the address."""
    if principal is not None:
        return f"key:{principal.key_id}" if principal.key_id else f"user:{principal.user_id}"
    return f"ip:{request.client.host if request.client else 'unknown'}"


Info: TypeAlias = strawberry.Info[Context, None]
