"""One origin setting governs CORS over HTTP and the websocket origin check."""

from __future__ import annotations

import httpx
import pytest
import websockets

from resolvers.core.settings import Settings
from schema.origins import OriginPolicy
from tests.conftest import serving

PARTNER = "https://app.partner.example"
STRANGER = "https://evil.example"
TOOLS = {"query": "{ tools { name } }"}


def test_policy_allows_listed_origins_and_loopback_only_when_asked() -> None:
    embedded = OriginPolicy([PARTNER], loopback=True)
    production = OriginPolicy([PARTNER], loopback=False)

    assert embedded.allows(PARTNER) and production.allows(PARTNER)
    assert embedded.allows("https://APP.partner.example/")  # case and a trailing slash
    for origin in ("http://localhost:3000", "http://127.0.0.1:5173", "http://[::1]:8080"):
        assert embedded.allows(origin)
        assert not production.allows(origin)
    for origin in (STRANGER, "null", "http://localhost.evil.example", "http://localhost:x"):
        assert not embedded.allows(origin)


def test_settings_refuse_what_is_not_an_origin() -> None:
    for bad in ("app.example.com", "https://app.example.com/path", "ftp://x.example"):
        with pytest.raises(ValueError, match="origin"):
            Settings(allowed_origins=[bad])


async def test_preflight_from_an_allowed_origin_is_answered(settings: Settings) -> None:
    async with (
        serving(settings, allowed_origins=[PARTNER]) as (server, _client, _token),
        httpx.AsyncClient() as http,
    ):
        response = await http.options(
            server.url + "/graphql",
            headers={
                "Origin": PARTNER,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, "
                "apollo-require-preflight, x-apollo-operation-name",
            },
        )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == PARTNER
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "apollo-require-preflight", "x-api-key"):
        assert header in allowed
    assert "POST" in response.headers["access-control-allow-methods"]
    assert int(response.headers["access-control-max-age"]) == settings.cors_max_age_seconds
    assert "Origin" in response.headers["vary"]


async def test_an_unknown_origin_gets_no_cors_headers(settings: Settings) -> None:
    async with (
        serving(settings, allowed_origins=[PARTNER]) as (server, _client, _token),
        httpx.AsyncClient() as http,
    ):
        preflight = await http.options(
            server.url + "/graphql",
            headers={"Origin": STRANGER, "Access-Control-Request-Method": "POST"},
        )
        simple = await http.post(server.url + "/graphql", json=TOOLS, headers={"Origin": STRANGER})
        allowed = await http.post(server.url + "/graphql", json=TOOLS, headers={"Origin": PARTNER})

    assert preflight.status_code == 403
    for response in (preflight, simple):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
        assert "Origin" in response.headers["vary"]
    assert allowed.headers["access-control-allow-origin"] == PARTNER
    assert "retry-after" in allowed.headers["access-control-expose-headers"].lower()


async def test_production_allows_only_configured_origins(settings: Settings) -> None:
    changes = {"allowed_origins": [PARTNER], "allow_loopback_origins": False}
    async with (
        serving(settings, **changes) as (server, _client, _token),
        httpx.AsyncClient() as http,
    ):
        response = await http.post(
            server.url + "/graphql", json=TOOLS, headers={"Origin": "http://localhost:3000"}
        )

    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_websocket_origin_follows_the_same_policy(settings: Settings, protocol: str) -> None:
    changes = {"allowed_origins": [PARTNER], "allow_loopback_origins": False}
    async with serving(settings, **changes) as (server, _client, _token):
        async with websockets.connect(
            server.ws_url,
            subprotocols=[protocol],  # type: ignore[list-item]
            origin=PARTNER,  # type: ignore[arg-type]
        ) as ws:
            assert ws.subprotocol == protocol
        for refused in (STRANGER, "http://localhost:3000"):
            with pytest.raises(websockets.InvalidStatus) as caught:
                async with websockets.connect(
                    server.ws_url,
                    subprotocols=[protocol],  # type: ignore[list-item]
                    origin=refused,  # type: ignore[arg-type]
                ):
                    pass
            assert caught.value.response.status_code == 403


async def test_embedded_mode_lets_a_local_page_open_a_websocket(
    embedded_settings: Settings,
) -> None:
    async with (
        serving(embedded_settings) as (server, _client, _token),
        websockets.connect(
            server.ws_url,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            origin="http://localhost:3000",  # type: ignore[arg-type]
        ) as ws,
    ):
        assert ws.subprotocol == "graphql-transport-ws"
