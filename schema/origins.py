"""Which browser origins may call the API: one policy for CORS over HTTP and for the
websocket origin check.

A page on an allowed origin gets CORS headers (preflight answered, `Authorization`, JSON and
Apollo's headers allowed, `Vary: Origin`); a page on any other origin gets none, so the
browser keeps the answer from it. Clients that are not browsers send no `Origin` and are not
affected.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Send

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# What a browser may send cross-origin: credentials, JSON, Apollo's CSRF and client headers,
# request ids and trace context.
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-API-Key",
    "Apollo-Require-Preflight",
    "X-Apollo-Operation-Name",
    "Apollographql-Client-Name",
    "Apollographql-Client-Version",
    "X-Request-ID",
    "Traceparent",
    "Tracestate",
)
EXPOSED_HEADERS = ("Retry-After", "X-Request-ID")


class OriginPolicy:
    """The configured origins, plus any loopback origin when `loopback` (embedded mode)."""

    def __init__(self, origins: list[str], *, loopback: bool) -> None:
        self._origins = frozenset(origin.rstrip("/").lower() for origin in origins)
        self._loopback = loopback

    def allows(self, origin: str) -> bool:
        """Whether a page on `origin` (the `Origin` header's value) may call the API."""
        origin = origin.rstrip("/").lower()
        if origin in self._origins:
            return True
        if not self._loopback:
            return False
        try:
            parts = urlsplit(origin)
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and parts.hostname in _LOOPBACK_HOSTS


class CORS(CORSMiddleware):
    """Starlette's CORS middleware deciding with an OriginPolicy, and silent to origins it
    does not allow (Starlette would still send them its method and header lists)."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy, max_age: int) -> None:
        super().__init__(
            app,
            allow_methods=("GET", "POST", "PUT"),
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            max_age=max_age,
        )
        self._policy = policy

    def is_allowed_origin(self, origin: str) -> bool:
        return self._policy.allows(origin)

    def preflight_response(self, request_headers: Headers) -> Response:
        if not self.is_allowed_origin(request_headers["origin"]):
            return PlainTextResponse(
                "this origin may not call the API", status_code=403, headers={"Vary": "Origin"}
            )
        return super().preflight_response(request_headers)

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin")
        if origin is None or self.is_allowed_origin(origin):
            await super().send(message, send, request_headers)
            return
        if message["type"] == "http.response.start":
            # Caches must not hand this answer to an allowed origin, or the other way round.
            headers = MutableHeaders(scope=message)
            headers["Vary"] = ", ".join([*headers.getlist("Vary"), "Origin"])
        await send(message)
