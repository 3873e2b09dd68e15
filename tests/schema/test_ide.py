"""GraphiQL is served from the app's own pinned files, references no other host, and stays
off in production unless CK_GRAPHIQL=true."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tomllib
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from resolvers.core.settings import Settings
from schema.app import create_app, open_resources
from schema.ide import STATIC_DIR, STATIC_PATH, ide_page
from tests.conftest import TEST_SECRET, Server

HTML = {"accept": "text/html"}
EXTERNAL = re.compile(r"\b(?:https?|wss?):|(?:^|[\s\"'(=])//[^/\s]", re.IGNORECASE)
MANIFEST = json.loads((STATIC_DIR / "manifest.json").read_text())
OURS = {"ide.js", "ide.css"}
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class _References(HTMLParser):
    """Collects every URL a page loads: script src, link href, and their integrity."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        url = found.get("src") if tag == "script" else found.get("href")
        if tag in ("script", "link") and url is not None:
            self.urls.append((url, found.get("integrity")))


def references(page: str) -> list[tuple[str, str | None]]:
    parser = _References()
    parser.feed(page)
    return parser.urls


@pytest.fixture
async def embedded(embedded_settings: Settings) -> AsyncIterator[Server]:
    """An embedded-mode server: the IDE needs no services."""
    async with Server(create_app(embedded_settings)) as server:
        yield server


async def test_the_page_loads_only_pinned_assets_from_this_app(embedded: Server) -> None:
    async with httpx.AsyncClient(base_url=embedded.url) as http:
        # when a browser opens /graphql
        page = await http.get("/graphql", headers=HTML)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        # then the page names no other host and runs no inline script
        assert not EXTERNAL.search(page.text), EXTERNAL.search(page.text)
        assert "<script>" not in page.text
        urls = references(page.text)
        assets = [(url, sri) for url, sri in urls if not url.startswith("data:")]
        names = {url.rsplit("/", 1)[1] for url, _ in assets}
        assert names == set(MANIFEST) | OURS
        # and every asset is served, typed, immutable, and is the file the manifest pins
        for url, integrity in assets:
            assert url.startswith(STATIC_PATH + "/"), url
            response = await http.get(url)
            assert response.status_code == 200, url
            name = url.rsplit("/", 1)[1]
            assert response.headers["content-type"] == MEDIA_TYPES[Path(name).suffix]
            assert "immutable" in response.headers["cache-control"]
            digest = hashlib.sha256(response.content).hexdigest()
            assert integrity == "sha256-" + base64.b64encode(bytes.fromhex(digest)).decode()
            assert url.split("/")[-2] == digest[:16]
            if name in OURS:
                assert not EXTERNAL.search(response.text), (name, EXTERNAL.search(response.text))
            else:
                assert digest == MANIFEST[name]["sha256"], name


async def test_asset_urls_only_serve_the_current_bytes_of_known_files(embedded: Server) -> None:
    async with httpx.AsyncClient(base_url=embedded.url) as http:
        script = next(u for u, _ in references(ide_page()) if u.endswith("/ide.js"))
        digest = script.split("/")[-2]
        assert (await http.get(script)).status_code == 200
        for url in (
            f"{STATIC_PATH}/{'0' * 16}/ide.js",  # a stale digest never serves other bytes
            f"{STATIC_PATH}/{digest}/manifest.json",
            f"{STATIC_PATH}/{digest}/..%2Fide.py",
            f"{STATIC_PATH}/{digest}/licenses/react.txt",
        ):
            assert (await http.get(url)).status_code == 404, url


def test_the_manifest_pins_every_vendored_file() -> None:
    for name, entry in MANIFEST.items():
        assert hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest() == entry["sha256"]
        assert entry["version"] in name and entry["license"] == "MIT"
        assert (STATIC_DIR / entry["license_file"]).is_file()


def test_the_assets_are_package_data() -> None:
    # The image installs a wheel (`pip install .`): files left out would 404 there.
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["schema"]
    package = STATIC_DIR.parents[1]
    shipped = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    assert {path for path in STATIC_DIR.rglob("*") if path.is_file()} <= shipped


def test_the_page_follows_the_apps_root_path() -> None:
    urls = [url for url, _ in references(ide_page("/api")) if not url.startswith("data:")]
    assert urls and all(url.startswith("/api" + STATIC_PATH + "/") for url in urls)


@pytest.mark.parametrize("graphiql_env", [None, "false", "true"])
async def test_production_serves_the_ide_only_when_asked(
    embedded_settings: Settings, monkeypatch: pytest.MonkeyPatch, graphiql_env: str | None
) -> None:
    # given production settings (the services are the embedded ones: no network needed)
    if graphiql_env is None:
        monkeypatch.delenv("CK_GRAPHIQL", raising=False)
    else:
        monkeypatch.setenv("CK_GRAPHIQL", graphiql_env)
    production = Settings(
        env="production",
        jwt_secret=TEST_SECRET,
        database_url="postgres://unused@127.0.0.1/unused",
        redis_url="redis://127.0.0.1:1/0",
        s3_bucket="unused",
    )
    enabled = graphiql_env == "true"
    assert production.graphiql_enabled is enabled
    async with (
        open_resources(embedded_settings) as resources,
        Server(create_app(production, resources)) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        # when a browser asks for the IDE and one of its assets
        page = await http.get("/graphql", headers=HTML)
        asset = references(ide_page())[-1][0]
        served = await http.get(asset)
    # then both exist only when CK_GRAPHIQL=true
    assert (page.status_code, served.status_code) == ((200, 200) if enabled else (404, 404))
