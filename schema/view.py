"""The HTTP/WebSocket boundary: Strawberry's ASGI view with our context and request checks."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from cross_web import HTTPException, StarletteRequestAdapter
from graphql import GraphQLError, get_operation_ast
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from resolvers.core.errors import NotAuthenticated, RateLimited, ServiceUnavailable
from resolvers.core.logcontext import USER_ID
from resolvers.resources import Core
from resolvers.streaming.queue import JobQueue
from schema.context import Context, rate_subject
from schema.documents import Document, DocumentRefused, Documents
from schema.ide import ide_response
from schema.origins import OriginPolicy
from schema.parsing import MAX_TOKENS, parse_cached
from schema.websocket import LegacyWSHandler, TransportWSHandler, WebSocketAdapter

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


class _MethodNotAllowed(HTTPException):
    """A mutation sent over GET: never executed."""


_DOCUMENT_PARAMS = ("query", "extensions", "documentId", "doc_id", "id")
_KINDS: dict[type, str] = {dict: "an object", str: "a string"}
# Apollo Server's CSRF prevention: a request a page on another origin could send without a
# CORS preflight is refused. Any of these headers forces a preflight (so does a credential:
# neither header is CORS-safelisted), and so does a Content-Type other than these three.
_SIMPLE_CONTENT_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
_PREFLIGHT_HEADERS = (
    "apollo-require-preflight",
    "x-apollo-operation-name",
    "authorization",
    "x-api-key",
)
_CSRF_MESSAGE = (
    "this request was blocked as a possible cross-site request forgery: send a Content-Type "
    "such as application/json, or a non-empty Apollo-Require-Preflight header"
)


def _preflighted(headers: Any) -> bool:
    """Whether a browser would have asked a CORS preflight before sending this request."""
    content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type and content_type not in _SIMPLE_CONTENT_TYPES:
        return True
    return any(headers.get(name) for name in _PREFLIGHT_HEADERS)


def _operation_type(query: str, operation_name: object) -> OperationType | None:
    """The type of the operation a document runs, if it parses and names one."""
    try:
        parsed = parse_cached(query, max_tokens=MAX_TOKENS)  # the same entry execution uses
    except GraphQLError:
        return None  # execution reports the syntax error
    name = operation_name if isinstance(operation_name, str) else None
    operation = get_operation_ast(parsed, name)
    return OperationType(operation.operation.value) if operation is not None else None


class _RequestAdapter(StarletteRequestAdapter):
    @property
    def request(self) -> Request:
        """The Starlette request behind the adapter."""
        return self._request


class GraphQLView(GraphQL[Context, None]):
    """Builds the typed context, authenticates sockets, answers bad requests in GraphQL shape,
    and is the HTTP edge: CSRF prevention, GET for queries, APQ and trusted documents,
    Cache-Control, and the websocket origin check (the sockets themselves: schema.websocket)."""

    request_adapter_class = _RequestAdapter
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    websocket_adapter_class = WebSocketAdapter

    def encode_json(self, data: object) -> str | bytes:
        # A streamed result shared by many subscribers (schema.fanout) has one `data` object:
        # its JSON is made once, and only the message around it per socket.
        if type(data) is dict and len(data) == 3:
            payload = data.get("payload")
            if type(payload) is dict and len(payload) == 1 and "data" in payload:
                body = '"payload":{"data":' + _encoded_once(payload["data"]) + "}"
                parts = [
                    body if key == "payload" else _member(key, value) for key, value in data.items()
                ]
                return "{" + ",".join(parts) + "}"
        return super().encode_json(data)

    def _services(self, request: Request | WebSocket) -> tuple[Core, JobQueue]:
        state = request.app.state
        return state.core, state.queue

    def __init__(
        self,
        *args: Any,
        documents: Documents,
        origins: OriginPolicy,
        public_max_age: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._documents = documents
        self._origins = origins
        self._public_cache = (
            f"public, max-age={public_max_age}" if public_max_age else "private, no-store"
        )

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
        except DocumentRefused as exc:
            response = _error_response(exc.status, exc.message, code=exc.code)
        except _MethodNotAllowed as exc:
            response = _error_response(405, exc.reason, code="METHOD_NOT_ALLOWED")
            response.headers["Allow"] = "POST"
        except HTTPException as exc:
            response = _error_response(exc.status_code, exc.reason)
        if "cache-control" not in response.headers:
            response.headers["Cache-Control"] = self._cache_control(request, response)
        await response(scope, receive, send)

    def _cache_control(self, request: Request, response: Response) -> str:
        """Anonymous query answers over GET may be shared (a CDN); nothing else is kept."""
        state = request.state
        public = (
            request.method == "GET"
            and response.status_code == 200
            and getattr(state, "anonymous", False)
            and getattr(state, "succeeded", False)
        )
        if not public:
            return "private, no-store"
        # The same URL answers differently with credentials: caches must key on them.
        response.headers["Vary"] = ", ".join(
            [*response.headers.getlist("Vary"), "Authorization", "X-API-Key"]
        )
        return self._public_cache

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A browser navigating here, not a GET naming a document by hash or id.
        params = request.query_params
        return (
            request.method == "GET"
            and not any(name in params for name in _DOCUMENT_PARAMS)
            and "text/html" in request.headers.get("accept", "")
        )

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        return self._origins.allows(origin)

    async def parse_http_body(self, request: Any) -> GraphQLRequestData | list[GraphQLRequestData]:
        if not _preflighted(request.headers):
            raise HTTPException(400, _CSRF_MESSAGE)
        data = await self._request_data(request)
        for name, kind in (("variables", dict), ("extensions", dict), ("operationName", str)):
            if not isinstance(data.get(name), kind | None):
                raise HTTPException(400, f"`{name}` must be {_KINDS[kind]} or null")
        starlette_request: Request = request.request
        core, _ = self._services(starlette_request)
        document = await self._documents.document(data, core.redis)
        if document.query is None:
            raise HTTPException(400, "the request needs a `query` string")
        if _SUBSCRIPTION.search(document.query):
            raise HTTPException(400, "subscriptions run over the websocket at /graphql")
        operation_name = data.get("operationName")
        if request.method == "GET" and _operation_type(document.query, operation_name) not in (
            OperationType.QUERY,
            None,  # a document that does not parse, or names no operation: execution says so
        ):
            raise _MethodNotAllowed(405, "only queries run over GET; send mutations by POST")
        starlette_request.state.document = document
        return GraphQLRequestData(
            query=document.query,
            variables=data.get("variables"),
            operation_name=data.get("operationName"),
            extensions=data.get("extensions"),
            protocol="http",
        )

    async def _request_data(self, request: Any) -> dict[str, Any]:
        """The GET query string's or the POST body's fields."""
        if request.method == "GET":
            try:
                return dict(self.parse_query_params(request.query_params))
            except (ValueError, RecursionError):
                raise HTTPException(400, "`variables` and `extensions` must be JSON") from None
        content_type = (request.headers.get("content-type") or "").split(";")[0].strip()
        if content_type.lower() != "application/json":
            raise HTTPException(415, "send the request as application/json")
        body = await request.get_body()
        try:
            data = json.loads(body) if body else None
        except (ValueError, RecursionError):  # also over 4,300-digit integers
            raise HTTPException(400, "the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "the request body must be a JSON object")
        return data

    async def process_result(self, request: Request, result: ExecutionResult) -> Any:
        state = request.state
        state.succeeded = not result.errors
        document: Document | None = getattr(state, "document", None)
        if document is not None and document.register and result.data is not None:
            # It parsed, validated and ran: worth keeping under its hash.
            core, _ = self._services(request)
            assert document.query is not None
            await self._documents.register(document.register, document.query, core.redis)
        return await super().process_result(request, result)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from this app's own pinned files (`schema/ide.py`), never a CDN."""
        return ide_response(request)

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
            request.state.anonymous = context.principal is None and context.auth_error is None
            try:
                await core.rate.hit(rate_subject(context.principal, request))
            except RateLimited as exc:
                raise _TooManyRequests(exc) from None
        return context

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        params = context.connection_params or {}
        context.connection_params = None  # read here only: an idle socket need not keep it
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
        if principal is None:
            return None
        if context.socket is not None:
            # Counted against the user's sockets (RateLimited: closed with 4429), indexed
            # for revocation, and closed with 4401 when the credentials expire.
            context.socket.bind(principal)
        context.principal = principal
        USER_ID.set(principal.user_id)
        return {"expiresAt": principal.expires_at}


def _client(request: Request | WebSocket) -> str | None:
    return request.client.host if request.client else None


_ENCODED: dict[int, tuple[object, str]] = {}  # id(data) -> (data, its JSON)
_ENCODED_KEPT = 256
_ENCODED_CHARS = 16 * 1024  # longer encodings are made each time, never kept


def _encoded_once(data: object) -> str:
    """The JSON of a result's `data`, made once per object (the entry holds the object, so
    its id cannot be reused while cached). Large results are not kept."""
    cached = _ENCODED.get(id(data))
    if cached is not None and cached[0] is data:
        return cached[1]
    text = _compact(data)
    if len(text) <= _ENCODED_CHARS:
        _ENCODED[id(data)] = (data, text)
        if len(_ENCODED) > _ENCODED_KEPT:
            del _ENCODED[next(iter(_ENCODED))]
    return text


def _member(key: str, value: object) -> str:
    """`"key":value` of a message's other members (its type, its id): the same few strings
    on every message of a socket, so their JSON is kept."""
    if type(value) is str and len(value) <= _MEMBER_CHARS:
        return _string_member(key, value)
    return f"{json.dumps(key)}:{_compact(value)}"


_MEMBER_CHARS = 128  # longer ids are encoded each time, never kept


@functools.lru_cache(maxsize=4_096)
def _string_member(key: str, value: str) -> str:
    return f"{json.dumps(key)}:{json.dumps(value)}"


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))  # as strawberry's encode_json
