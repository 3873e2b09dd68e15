"""GraphiQL from this app alone: pinned assets, a page with no external URL, a strict CSP.

The page loads React, graphql-ws and GraphiQL from `static/graphiql/` (their versions and
sums in its `manifest.json`) at `/graphiql/static/<sha256 prefix>/<name>`, so a URL never
changes content and is cached as immutable. `ide.js` starts GraphiQL with a fetcher that
sends the header editor's headers over HTTP and as the websocket's connection parameters.
"""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

STATIC_DIR = Path(__file__).parent / "static" / "graphiql"
STATIC_PATH = "/graphiql/static"
_STYLES = ("graphiql-3.8.3.min.css", "ide.css")
_SCRIPTS = (
    "react-18.3.1.production.min.js",
    "react-dom-18.3.1.production.min.js",
    "graphql-ws-5.16.2.min.js",
    "graphiql-3.8.3.min.js",
    "ide.js",
)
_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_DIGEST_CHARS = 16
_IMMUTABLE = "public, max-age=31536000, immutable"
# GraphiQL sets style attributes and its fonts are data: URLs; scripts come from 'self' only.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self' data:",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


@dataclass(frozen=True)
class Asset:
    """One file of the IDE: its bytes as read once, so a URL's digest always fits them."""

    name: str
    content: bytes = field(repr=False)

    @cached_property
    def sha256(self) -> str:
        """The hex SHA-256 of its bytes."""
        return hashlib.sha256(self.content).hexdigest()

    @property
    def path(self) -> str:
        """Its URL path under the app: the digest prefix changes whenever the bytes do."""
        return f"{STATIC_PATH}/{self.sha256[:_DIGEST_CHARS]}/{self.name}"

    @property
    def integrity(self) -> str:
        """Its Subresource Integrity value."""
        return "sha256-" + base64.b64encode(bytes.fromhex(self.sha256)).decode()


@cache
def assets() -> dict[str, Asset]:
    """The page's files by name, read once per process (4 MB)."""
    return {name: Asset(name, (STATIC_DIR / name).read_bytes()) for name in (*_STYLES, *_SCRIPTS)}


def ide_page(root_path: str = "") -> str:
    """The IDE's HTML: only same-origin stylesheets and scripts, each with its integrity;
    `root_path` is the ASGI prefix the app is served under, if any."""
    files = assets()

    def attributes(name: str) -> str:
        asset = files[name]
        return f'"{html.escape(root_path + asset.path)}" integrity="{asset.integrity}"'

    styles = "".join(f"\n<link rel=stylesheet href={attributes(name)}>" for name in _STYLES)
    scripts = "".join(f"\n<script src={attributes(name)}></script>" for name in _SCRIPTS)
    return (
        "<!doctype html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n"
        "<meta name=viewport content='width=device-width, initial-scale=1'>\n"
        "<title>Creation King GraphiQL</title>\n<link rel=icon href='data:,'>"
        f"{styles}\n</head>\n<body>\n<div id=graphiql>Loading GraphiQL…</div>"
        "\n<noscript>GraphiQL needs JavaScript.</noscript>"
        f"{scripts}\n</body>\n</html>\n"
    )


def ide_response(request: Request) -> HTMLResponse:
    """The IDE page for `request`, with its Content-Security-Policy."""
    return HTMLResponse(
        ide_page(str(request.scope.get("root_path", ""))),
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


async def _asset(request: Request) -> Response:
    asset = assets().get(request.path_params["name"])
    if asset is None or request.path_params["digest"] != asset.sha256[:_DIGEST_CHARS]:
        return PlainTextResponse("Not Found", status_code=404)
    return Response(
        asset.content,
        media_type=_MEDIA_TYPES[Path(asset.name).suffix],
        headers={"Cache-Control": _IMMUTABLE, "X-Content-Type-Options": "nosniff"},
    )


def ide_routes() -> list[BaseRoute]:
    """The route serving the IDE's assets (mount it only when GraphiQL is on); reads them
    now, when the app is built, rather than in the first request."""
    assets()
    return [Route(STATIC_PATH + "/{digest}/{name}", _asset, methods=["GET"])]
