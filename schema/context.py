"""The per-request GraphQL context and the `Info` alias resolvers are typed with."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any, TypeAlias

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from resolvers.auth import Principal
from resolvers.errors import NotAuthenticated, ServiceUnavailable
from resolvers.loaders import Loaders
from resolvers.queue import JobQueue
from resolvers.resources import Core

# Set by the LoadersPerOperation extension: a websocket's context lives as long as the socket,
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

    @property
    def loaders(self) -> Loaders:
        """The DataLoaders of the running operation."""
        loaders = current_loaders.get()
        if loaders is None:
            loaders = Loaders()
            current_loaders.set(loaders)
        return loaders

    def user(self) -> Principal | None:
        """The principal; re-raises a bad token's error so the client learns why."""
        if self.auth_error is not None:
            raise self.auth_error
        return self.principal


Info: TypeAlias = strawberry.Info[Context, None]
