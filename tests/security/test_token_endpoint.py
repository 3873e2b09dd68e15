"""Issue 11, finding 5 at POST /oauth/token: 100 bogus token requests took 0.3 s and each
added an append-only audit row. Now the endpoint is rate-limited per client address, wrong
client secrets lock the client id at that address as wrong passwords lock an account, and
both refusals are 429 with Retry-After, counted instead of written to the audit log."""

from __future__ import annotations

import asyncio

import httpx

from resolvers.core.models import AuditEntry
from resolvers.core.settings import Settings
from tests.conftest import Server, serving
from tests.schema.test_oauth import new_key


async def token_request(
    server: Server, client_id: str, secret: str, address: str = "127.0.0.1"
) -> httpx.Response:
    """POST a client-credentials request from `address` (any 127.x.y.z is loopback)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(transport=transport) as http:
        return await http.post(
            f"{server.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )


def refused(response: httpx.Response) -> int:
    """The Retry-After of a 429 in the OAuth error shape (fails on anything else)."""
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "slow_down", response.text
    assert response.headers["cache-control"] == "no-store"
    return int(response.headers["retry-after"])


async def test_wrong_client_secrets_lock_the_client_at_that_address(settings: Settings) -> None:
    # a generous endpoint rate, so that only the lock acts here
    changes = {"token_endpoint_per_minute": 10_000, "login_lock_seconds": 60}
    async with serving(settings, **changes) as (server, gql, token):
        made = await new_key(gql, token, ["tools:translate"])
        client_id, secret = made["key"]["clientId"], made["secret"]
        last = await AuditEntry.all().order_by("-id").first()
        # when an attacker sends 100 wrong secrets for a real client id
        wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
        answers = [await token_request(server, client_id, wrong) for _ in range(100)]
        # then five are checked (invalid_client) and the rest refused with when to retry
        assert [r.json()["error"] for r in answers[:5]] == ["invalid_client"] * 5
        assert all(1 <= refused(r) <= 60 for r in answers[5:])
        # the partner's right secret from there waits too, but works from elsewhere
        assert 1 <= refused(await token_request(server, client_id, secret)) <= 60
        elsewhere = await token_request(server, client_id, secret, "127.0.0.2")
        assert elsewhere.status_code == 200, elsewhere.text
        # and the audit log holds the five failures and the start of the lock, not 100 rows
        since = last.id if last is not None else 0
        rows = await AuditEntry.filter(operation="oauthToken", id__gt=since).order_by("id")
    outcomes = [row.outcome for row in rows]
    assert outcomes == ["INVALID_CLIENT"] * 5 + ["RATE_LIMITED", "OK"], outcomes
    assert rows[5].detail == "locked 60 s (account and address); 0 attempts refused before"


async def test_token_requests_are_rate_limited_per_address(settings: Settings) -> None:
    async with serving(settings, token_endpoint_per_minute=30) as (server, gql, token):
        made = await new_key(gql, token, ["tools:translate"])
        client_id, secret = made["key"]["clientId"], made["secret"]
        last = await AuditEntry.all().order_by("-id").first()
        # even with the right secret, a burst of 100 is cut short
        burst = await asyncio.gather(
            *(token_request(server, client_id, secret) for _ in range(100))
        )
        granted = [r for r in burst if r.status_code == 200]
        assert 1 <= len(granted) <= 10, [r.status_code for r in burst]
        assert all(refused(r) >= 1 for r in burst if r.status_code != 200)
        # bogus requests with no credentials at all are refused the same
        anonymous = await token_request(server, "", "")
        assert refused(anonymous) >= 1
        # another address has its own allowance
        other = await token_request(server, client_id, secret, "127.0.0.3")
        assert other.status_code == 200, other.text
        since = last.id if last is not None else 0
        rows = await AuditEntry.filter(operation="oauthToken", id__gt=since).count()
    assert rows == len(granted) + 1  # refusals by the rate limit write nothing


async def test_control_characters_in_credentials_are_refused_typed(settings: Settings) -> None:
    """Issue 11, low: strings are checked once at the boundary, here as in GraphQL."""
    async with serving(settings) as (server, _graphql, _token), httpx.AsyncClient() as http:
        in_form = await http.post(
            f"{server.url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "ck_\x00abc",
                "client_secret": "x",
            },
        )
        in_header = await http.post(
            f"{server.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("ck_\x00abc", "x"),
        )
    assert in_form.status_code == 400, in_form.text
    assert in_form.json()["error"] == "invalid_request"
    assert "NUL" in in_form.json()["error_description"]
    assert in_header.status_code == 401, in_header.text
    assert in_header.json()["error"] == "invalid_client"
