"""The websocket edge: both protocols' handlers with what an HTTP request gets.

Every socket is registered (`resolvers.access.sockets`): capped per client address at accept and
per user at `connection_init`, closed with 4429 and a reason when over. Every operation on
it, query, mutation or subscription, first re-checks the caller's session or key and counts
against the same request limiter as HTTP; a refusal is answered as a typed GraphQL error
(UNAUTHENTICATED, RATE_LIMITED with `retryAfter`) before anything runs, and a revoked
caller's socket is then closed (4403). Revocations elsewhere close it too, through the
registry.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from json import JSONDecodeError
from typing import cast

from graphql import GraphQLError
from starlette.requests import Request
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage, StartMessage

from resolvers.access.sockets import CLOSE_REVOKED, CLOSE_TOO_MANY
from resolvers.core.errors import CreationKingError, NotAuthenticated, RateLimited
from schema.context import Context, rate_subject
from schema.parsing import CACHEABLE_CHARS

log = logging.getLogger("creation_king.graphql")


@dataclass(frozen=True)
class _Refusal:
    """An operation that may not run: the error to answer, and whether to close after."""

    error: GraphQLError
    close: bool = False


async def _admit(context: Context) -> _Refusal | None:
    """The per-operation check of a socket: the caller again, then the request limiter."""
    try:
        if context.principal is not None:
            context.principal = await context.core.identity.recheck(context.principal)
        await context.core.rate.hit(rate_subject(context.principal, context.request))
    except NotAuthenticated as exc:
        context.principal, context.auth_error = None, exc
        return _Refusal(_error(exc), close=True)
    except CreationKingError as exc:  # RateLimited, ServiceUnavailable
        return _Refusal(_error(exc))
    except Exception:  # the outermost layer of a socket's operation: answer, never drop
        reference = uuid.uuid4().hex[:12]
        log.exception("unexpected error admitting a websocket operation (reference %s)", reference)
        return _Refusal(
            GraphQLError(
                f"Unexpected error (reference {reference}).",
                extensions={"code": "INTERNAL", "reference": reference},
            )
        )
    return None


def shared_text(query: str) -> str:
    """One copy of a document text that many sockets send: a thousand subscribers of one
    query keep one string, not a thousand (`sys.intern`, which lets it go with the last)."""
    # (A client may send anything as the query: only exact strings are shared.)
    if type(query) is str and len(query) <= CACHEABLE_CHARS:
        return sys.intern(query)
    return query


def _error(exc: CreationKingError) -> GraphQLError:
    return GraphQLError(exc.message, extensions=exc.extensions, original_error=exc)


def _address(request: Request | WebSocket) -> str:
    return request.client.host if request.client else "unknown"


async def _close(websocket: AsyncWebSocketAdapter, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnected):  # closing already
        await websocket.close(code, reason)


async def _serve(
    context: Context,
    websocket: AsyncWebSocketAdapter,
    end: Callable[[int, str], Awaitable[None]],
    handle: Callable[[], Awaitable[None]],
) -> None:
    """Run a socket's handler while it is registered; refuse it over its address's cap."""
    try:
        registration = context.core.sockets.open(_address(context.request), end)
    except RateLimited as exc:
        await _close(websocket, CLOSE_TOO_MANY, exc.message)
        return
    with registration as context.socket:
        await handle()


class WebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's ASGI socket, keeping no message while it waits for the next one.

    strawberry's `iter_json` holds the last message's text in its frame until the next
    message comes, and its handlers hold the decoded message: on a subscription's socket,
    the whole subscribe message (the document, often kilobytes) for the subscription's life.
    Here the text is dropped once decoded, and the handlers below empty the message once its
    operation holds what it needs."""

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                try:
                    message = self.view.decode_json(await self.ws.receive_text())
                except JSONDecodeError as exc:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from exc
                    continue
                yield message
                del message
        except KeyError as exc:  # a binary frame
            raise NonTextMessageReceived from exc
        except WebSocketDisconnect:  # pragma: no cover  (as strawberry's)
            pass


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with registration, caps and the per-operation check."""

    async def handle(self) -> None:
        await _serve(self.context, self.websocket, self._end, super().handle)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except RateLimited as exc:  # over the user's socket cap (on_ws_connect)
            await _close(self.websocket, CLOSE_TOO_MANY, exc.message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload = message.get("payload")
        if isinstance(payload, dict) and "query" in payload:
            payload["query"] = shared_text(payload["query"])
        await super().handle_subscribe(message)
        cast("dict[str, object]", message).clear()  # the operation holds its parts

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        refusal = await _admit(self.context)
        if refusal is None:
            await super().run_operation(operation)
            return
        with contextlib.suppress(WebSocketDisconnected, KeyError):  # gone or stopped
            await operation.send_initial_errors([refusal.error])
        if refusal.close and self.context.socket is not None:
            self.context.socket.close(CLOSE_REVOKED, refusal.error.message[:120])

    async def _end(self, code: int, reason: str) -> None:
        """End every running operation, then close the socket."""
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        await _close(self.websocket, code, reason)


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol with the same registration, caps and checks."""

    async def handle(self) -> None:
        await _serve(self.context, self.websocket, self._end, super().handle)

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except RateLimited as exc:
            await _close(self.websocket, CLOSE_TOO_MANY, exc.message)

    async def handle_start(self, message: StartMessage) -> None:
        await super().handle_start(message)
        cast("dict[str, object]", message).clear()  # the operation holds its parts

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        refusal = await _admit(self.context)
        if refusal is None:
            query = shared_text(query)
            await super().handle_async_results(operation_id, query, operation_name, variables)
            return
        try:
            with contextlib.suppress(WebSocketDisconnected):
                await self.send_message(
                    ErrorMessage(type="error", id=operation_id, payload=refusal.error.formatted)
                )
        finally:
            self.tasks.pop(operation_id, None)
        if refusal.close and self.context.socket is not None:
            self.context.socket.close(CLOSE_REVOKED, refusal.error.message[:120])

    async def _end(self, code: int, reason: str) -> None:
        """End every running operation (each answers `complete`), then close the socket."""
        await self.cleanup()
        await _close(self.websocket, code, reason)
