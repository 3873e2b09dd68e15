"""The HTTP/WebSocket boundary: Strawberry's ASGI view with our context and request checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import weakref
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData

from resolvers.errors import NotAuthenticated, RateLimited, ServiceUnavailable
from resolvers.logcontext import USER_ID
from resolvers.queue import JobQueue
from resolvers.resources import Core
from schema.context import Context, rate_subject

_SUBSCRIPTION = re.compile(r"^\s*subscription\b", re.MULTILINE)
MAX_BODY_BYTES = 1 << 20  # as the websocket frame limit; prompts are at most 8,000 characters


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive` that refuses a body growing past `limit` (chunked uploads included)."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise HTTPException(413, f"the request body is over {limit} bytes")
        return message

    return limited


def _error_response(status: int, message: str, **extensions: object) -> JSONResponse:
    extensions.setdefault("code", "BAD_REQUEST" if status < 500 else "INTERNAL")
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": extensions}]},
        status_code=status,
    )


class _TooManyRequests(HTTPException):
    """Over the caller's request rate: answered 429 with Retry-After."""

    def __init__(self, exc: RateLimited) -> None:
        super().__init__(429, exc.message)
        self.retry_after = exc.retry_after


class GraphQLView(GraphQL[Context, None]):
    """Builds the typed context, authenticates sockets, answers bad requests in GraphQL shape."""

    def _services(self, request: Request | WebSocket) -> tuple[Core, JobQueue]:
        state = request.app.state
        return state.core, state.queue

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=_limited(receive, MAX_BODY_BYTES))
        try:
            declared = int(request.headers.get("content-length") or 0)
        except ValueError:
            declared = 0
        try:
            if declared > MAX_BODY_BYTES:
                raise HTTPException(413, f"the request body is over {MAX_BODY_BYTES} bytes")
            response = await self.run(request)
        except _TooManyRequests as exc:
            response = _error_response(
                429, exc.reason, code="RATE_LIMITED", retryAfter=exc.retry_after
            )
            response.headers["Retry-After"] = str(exc.retry_after)
        except HTTPException as exc:
            response = _error_response(exc.status_code, exc.reason)
        await response(scope, receive, send)

    async def parse_http_body(self, request: Any) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method == "POST":
            body = await request.get_body()
            try:
                data = json.loads(body) if body else None
            except (ValueError, RecursionError):  # also over 4,300-digit integers
                raise HTTPException(400, "the request body is not valid JSON") from None
            if not isinstance(data, dict):
                raise HTTPException(400, "the request body must be a JSON object")
            if not isinstance(data.get("query"), str):
                raise HTTPException(400, "the request needs a `query` string")
        parsed = await super().parse_http_body(request)
        if isinstance(parsed, GraphQLRequestData) and not isinstance(parsed.query, str):
            raise HTTPException(400, "the request needs a `query` string")
        if isinstance(parsed, GraphQLRequestData) and _SUBSCRIPTION.search(parsed.query or ""):
            raise HTTPException(400, "subscriptions run over the websocket at /graphql")
        return parsed

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None
    ) -> Context:
        core, queue = self._services(request)
        context = Context(request=request, response=response, core=core, queue=queue)
        if isinstance(request, Request):
            try:
                context.principal = await core.identity.principal(
                    request.headers.get("authorization"),
                    request.headers.get("x-api-key"),
                    client=_client(request),
                )
            except (NotAuthenticated, ServiceUnavailable) as exc:
                context.auth_error = exc
            if context.principal is not None:
                USER_ID.set(context.principal.user_id)
            try:
                await core.rate.hit(rate_subject(context.principal, request))
            except RateLimited as exc:
                raise _TooManyRequests(exc) from None
        return context

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        api_key = params.get("X-API-Key") or params.get("x-api-key")
        if header is None and api_key is None:
            return None  # anonymous: only public fields work
        if not isinstance(header, str | None) or not isinstance(api_key, str | None):
            raise ConnectionRejectionError({"reason": "credentials must be strings"})
        try:
            principal = await context.core.identity.principal(
                header, api_key, client=_client(context.request)
            )
        except (NotAuthenticated, ServiceUnavailable) as exc:
            raise ConnectionRejectionError({"reason": exc.message}) from exc
        context.principal = principal
        if principal is None:
            return None
        USER_ID.set(principal.user_id)
        websocket = context.request
        if isinstance(websocket, WebSocket):
            _close_at(websocket, principal.expires_at)
        return {"expiresAt": principal.expires_at}


def _client(request: Request | WebSocket) -> str | None:
    return request.client.host if request.client else None


def _close_at(websocket: WebSocket, expires_at: float) -> None:
    """Close the socket with 4401 when its credentials expire: a client reconnects with a
    fresh token (subscriptions resume with `after`)."""
    loop = asyncio.get_running_loop()
    ref = weakref.ref(websocket)

    def expire() -> None:
        socket = ref()
        if socket is not None and socket.application_state is WebSocketState.CONNECTED:
            task = loop.create_task(_close(socket))
            _CLOSING.add(task)
            task.add_done_callback(_CLOSING.discard)

    loop.call_later(max(0.0, expires_at - time.time()), expire)


_CLOSING: set[asyncio.Task[None]] = set()


async def _close(socket: WebSocket) -> None:
    with contextlib.suppress(RuntimeError, OSError):  # it may be closing already
        await socket.close(code=4401, reason="the access token expired")
