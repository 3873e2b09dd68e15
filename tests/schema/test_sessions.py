"""Sign-in sessions under attack: refresh rotation and reuse, logout, forged and expiring
tokens, over HTTP and the websocket."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from unittest.mock import ANY

import pytest
import websockets

from resolvers.access.auth import Auth
from resolvers.core.models import Role, User
from resolvers.core.settings import Settings
from tests.conftest import TEST_SECRET, GraphQLClient, Server, open_socket, serving
from tests.schema.test_subscriptions import (
    EVENTS,
    WRITE,
    assert_well_formed,
    events_of,
    text_of,
)

PASSWORD = "correct horse battery"
SESSION_FIELDS = """
  __typename
  ... on AuthSession { accessToken refreshToken expiresIn user { id email role } }
  ... on Error { code message }
"""
REGISTER = f"""
mutation R($email: String!, $password: String!) {{
  register(input: {{email: $email, password: $password}}) {{ {SESSION_FIELDS} }}
}}
"""
LOGIN = f"""
mutation L($email: String!, $password: String!) {{
  login(input: {{email: $email, password: $password}}) {{ {SESSION_FIELDS} }}
}}
"""
REFRESH = f"""
mutation F($token: String!) {{ refreshSession(refreshToken: $token) {{ {SESSION_FIELDS} }} }}
"""
LOGOUT = "mutation { logout { __typename ... on LoggedOut { ok } ... on Error { code message } } }"
ME = "{ me { id email role } }"


@dataclass(frozen=True)
class Person:
    """A registered user and one of their sessions."""

    id: str
    email: str
    access: str
    refresh: str


def _person(session: dict[str, Any]) -> Person:
    assert session["__typename"] == "AuthSession", session
    user = session["user"]
    return Person(user["id"], user["email"], session["accessToken"], session["refreshToken"])


async def sign_up(graphql: GraphQLClient) -> Person:
    """Register a new account: its first session."""
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    data = await graphql.query(REGISTER, {"email": email, "password": PASSWORD})
    return _person(data["register"])


async def sign_in(graphql: GraphQLClient, email: str) -> Person:
    """Log in again: another session of the same account."""
    data = await graphql.query(LOGIN, {"email": email, "password": PASSWORD})
    return _person(data["login"])


async def promote(graphql: GraphQLClient, person: Person, role: Role = Role.ADMIN) -> Person:
    """Give the account `role` and sign in again (tokens carry the role they were made with)."""
    await User.filter(id=person.id).update(role=role)
    return await sign_in(graphql, person.email)


async def refresh(graphql: GraphQLClient, token: str) -> dict[str, Any]:
    result: dict[str, Any] = (await graphql.query(REFRESH, {"token": token}))["refreshSession"]
    return result


async def me(graphql: GraphQLClient, token: str) -> str:
    """`ok` when the token opens `me`, else the error code."""
    body = (await graphql.raw(ME, token=token)).json()
    if body.get("errors"):
        return str(body["errors"][0]["extensions"]["code"])
    return "ok"


async def socket_refused(ws_url: str, payload: dict[str, Any]) -> int:
    """The close code of a connection_init with `payload` that the server refuses."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with open_socket(ws_url, payload=payload):
            pass
    assert closed.value.rcvd is not None, closed.value
    return closed.value.rcvd.code


def assert_gapless(events: list[dict[str, Any]], after: int = 0) -> None:
    """Seqs of a partial stream follow each other (merged deltas cover firstSeq..seq)."""
    expected = after + 1
    for event in events:
        assert (event.get("firstSeq") or event["seq"]) == expected, events
        expected = event["seq"] + 1


async def code_of(graphql: GraphQLClient, query: str, variables: dict[str, Any], token: str) -> Any:
    """The error code of a query field that raises."""
    return (await graphql.errors(query, variables, token))[0].get("extensions", {}).get("code")


async def creation_ids(graphql: GraphQLClient, token: str) -> list[str]:
    data = await graphql.query("{ creations { edges { node { id } } } }", token=token)
    return [edge["node"]["id"] for edge in data["creations"]["edges"]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_and_login_return_a_whole_session(client: GraphQLClient) -> None:
    # given a new account
    first = await sign_up(client)
    # when it logs in again
    second = await sign_in(client, first.email)
    # then both sessions carry both tokens and the access token's lifetime
    again = await client.query(LOGIN, {"email": first.email, "password": PASSWORD})
    assert again["login"]["expiresIn"] == 900 and again["login"]["user"]["role"] == "USER"
    assert first.refresh.startswith("ckr_") and second.refresh.startswith("ckr_")
    assert len({first.access, second.access, first.refresh, second.refresh}) == 4
    assert await me(client, first.access) == await me(client, second.access) == "ok"


async def test_a_refresh_rotates_both_tokens(client: GraphQLClient) -> None:
    person = await sign_up(client)
    # when the refresh token is traded twice in a row
    second = await refresh(client, person.refresh)
    third = await refresh(client, second["refreshToken"])
    # then each trade gives new working tokens for the same user
    assert second["__typename"] == third["__typename"] == "AuthSession", (second, third)
    assert second["user"]["id"] == third["user"]["id"] == person.id
    assert len({person.refresh, second["refreshToken"], third["refreshToken"]}) == 3
    assert second["expiresIn"] == 900
    assert await me(client, third["accessToken"]) == "ok"


async def test_replaying_a_used_refresh_token_ends_the_whole_session(
    server: Server, client: GraphQLClient
) -> None:
    # given a session refreshed twice, and another session of the same account
    person = await sign_up(client)
    other = await sign_in(client, person.email)
    second = await refresh(client, person.refresh)
    newest = await refresh(client, second["refreshToken"])
    # when the first (already used) refresh token comes back, as a thief would send it
    replay = await refresh(client, person.refresh)
    # then it is refused, and so is everything else of that session, at once
    assert replay["__typename"] == "AuthError" and replay["code"] == "UNAUTHENTICATED", replay
    after = await refresh(client, newest["refreshToken"])
    assert after["__typename"] == "AuthError" and after["code"] == "UNAUTHENTICATED", after
    for token in (person.access, second["accessToken"], newest["accessToken"]):
        assert await me(client, token) == "UNAUTHENTICATED"
    assert await socket_refused(server.ws_url, bearer(newest["accessToken"])) == 4403
    # while the account's other session is untouched
    assert await me(client, other.access) == "ok"
    assert (await refresh(client, other.refresh))["__typename"] == "AuthSession"


async def test_two_racing_refreshes_with_one_token_end_the_session(
    client: GraphQLClient,
) -> None:
    # the interleaving varies, so the race is run a few times; each must end its session
    for _ in range(5):
        person = await sign_up(client)
        # when one refresh token is traded twice at the same moment
        results = await asyncio.gather(*(refresh(client, person.refresh) for _ in range(2)))
        # then at most one trade answers; the other counts as a replay and ends the session
        kinds = sorted(result["__typename"] for result in results)
        assert kinds in (["AuthError", "AuthError"], ["AuthError", "AuthSession"]), results
        assert await me(client, person.access) == "UNAUTHENTICATED"
        for won in (result for result in results if result["__typename"] == "AuthSession"):
            assert await me(client, won["accessToken"]) == "UNAUTHENTICATED"
            # including the refresh token the winner was just given
            leaked = await refresh(client, won["refreshToken"])
            assert leaked["__typename"] == "AuthError", leaked


async def test_logout_ends_this_session_at_once_and_no_other(
    server: Server, client: GraphQLClient
) -> None:
    # given two sessions of one account, the first one in use
    person = await sign_up(client)
    other = await sign_in(client, person.email)
    assert await me(client, person.access) == "ok"
    async with open_socket(server.ws_url, person.access):
        pass
    # when the first logs out
    out = await client.query(LOGOUT, token=person.access)
    assert out["logout"] == {"__typename": "LoggedOut", "ok": True}
    # then its access token and refresh token stop working immediately, also for new sockets
    assert await me(client, person.access) == "UNAUTHENTICATED"
    gone = await refresh(client, person.refresh)
    assert gone["__typename"] == "AuthError" and gone["code"] == "UNAUTHENTICATED", gone
    assert await socket_refused(server.ws_url, bearer(person.access)) == 4403
    again = await client.query(LOGOUT, token=person.access)
    assert again["logout"]["__typename"] == "AuthError"
    # and the other session works on, over HTTP and the websocket
    assert await me(client, other.access) == "ok"
    async with open_socket(server.ws_url, other.access) as sock:
        op = await sock.subscribe(WRITE, {"input": {"prompt": "still here", "maxTokens": 5}})
        assert events_of(await sock.collect(op))[-1]["__typename"] == "CreationCompleted"
    assert (await refresh(client, other.refresh))["__typename"] == "AuthSession"


async def test_logout_needs_a_session(client: GraphQLClient) -> None:
    anonymous = (await client.query(LOGOUT))["logout"]
    assert anonymous == {"__typename": "AuthError", "code": "UNAUTHENTICATED", "message": ANY}


async def test_a_socket_opened_before_logout_cannot_start_work_after_it(
    server: Server, client: GraphQLClient
) -> None:
    # given a socket opened with a session's token
    person = await sign_up(client)
    other = await sign_in(client, person.email)
    async with open_socket(server.ws_url, person.access) as sock:
        # when that session logs out
        assert (await client.query(LOGOUT, token=person.access))["logout"]["ok"] is True
        # then the open socket may not start a creation any more (it may be closed already)
        try:
            await sock.subscribe(WRITE, {"input": {"prompt": "after logout", "maxTokens": 5}})
            message: dict[str, Any] | None = await sock.receive(timeout=5)
        except websockets.ConnectionClosed:
            message = None
    assert await creation_ids(client, other.access) == [], message


GARBAGE = [
    "",
    "   ",
    "garbage",
    "ckr_" + "A" * 43,
    "ckr_" + "A" * 100_000,
    "x" * 300_000,
    "ckr_é漢字🙂",
]


@pytest.mark.parametrize(
    "token",
    GARBAGE,
    ids=lambda token: repr(token)[:24],
)
async def test_garbage_refresh_tokens_are_a_typed_auth_error(
    client: GraphQLClient, token: str
) -> None:
    # the body is encoded by hand: JSON may carry escapes httpx would refuse to encode
    body = json.dumps({"query": REFRESH, "variables": {"token": token}})
    response = await client.http.post(
        client.url, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    payload = response.json()
    assert not payload.get("errors"), payload["errors"]
    result = payload["data"]["refreshSession"]
    assert result["__typename"] == "AuthError" and result["code"] == "UNAUTHENTICATED", result


async def test_an_access_token_is_not_a_refresh_token(client: GraphQLClient) -> None:
    person = await sign_up(client)
    wrong = await refresh(client, person.access)
    assert wrong["__typename"] == "AuthError", wrong
    # and the session is not harmed by the attempt
    assert (await refresh(client, person.refresh))["__typename"] == "AuthSession"


def _auth(
    settings: Settings, *, secret: str = TEST_SECRET, ttl: int = 900, issuer: str = ""
) -> Auth:
    return Auth(
        secret=secret,
        issuer=issuer or settings.jwt_issuer,
        ttl_seconds=ttl,
        time_cost=1,
        memory_kib=1024,
    )


async def test_forged_and_expired_access_tokens_are_refused(
    server: Server, client: GraphQLClient, settings: Settings
) -> None:
    person = await sign_up(client)
    forged = {
        "other secret": _auth(settings, secret="another-secret-" + "y" * 40).issue(
            person.id, role=Role.ADMIN
        ),
        "other issuer": _auth(settings, issuer="someone-else").issue(person.id),
        "expired": _auth(settings, ttl=-30).issue(person.id),
        "unsigned": _unsigned(person.id, settings.jwt_issuer),
        "truncated": person.access[:-3],
    }
    for name, token in forged.items():
        assert await me(client, token) == "UNAUTHENTICATED", name
        assert await socket_refused(server.ws_url, bearer(token)) == 4403, name
    # a genuine token of an unknown user opens nothing either
    ghost = _auth(settings).issue(str(uuid.uuid4()))
    assert await me(client, ghost) == "UNAUTHENTICATED"


def _unsigned(user_id: str, issuer: str) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    now = int(time.time())
    claims = {"iss": issuer, "sub": user_id, "exp": now + 600, "iat": now, "role": "ADMIN"}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def _read_until_closed(sock: Any, events: list[dict[str, Any]]) -> tuple[int, float]:
    """Collect events until the server closes the socket: (close code, when)."""
    try:
        while True:
            message = await sock.receive(timeout=10)
            if message["type"] == "next":
                events.append(next(iter(message["payload"]["data"].values())))
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None, closed
        return closed.rcvd.code, time.time()


async def test_a_socket_closes_with_4401_when_its_token_expires_and_resumes(
    settings: Settings,
) -> None:
    # given a slow creation, and a token of its owner that lives two seconds
    async with serving(settings, dev_token_delay=0.01) as (server, graphql, token):
        user_id = (await graphql.query(ME, token=token))["me"]["id"]
        expires_at = int(time.time()) + 2
        short = _auth(settings, ttl=2).issue(user_id)
        # when it streams over a socket opened with the short token
        events: list[dict[str, Any]] = []
        async with open_socket(server.ws_url, short) as sock:
            await sock.subscribe(WRITE, {"input": {"prompt": "outlive me", "maxTokens": 400}})
            code, closed_at = await _read_until_closed(sock, events)
        # then the server closes it with 4401 soon after the token's expiry, mid-stream
        assert code == 4401
        assert expires_at - 1 <= closed_at <= expires_at + 3, (closed_at, expires_at)
        assert events and events[-1]["__typename"] == "TokenDelta", events[-1:]
        assert_gapless(events)
        # and a fresh token resumes exactly where the stream stopped
        creation_id, last = events[0]["creationId"], events[-1]["seq"]
        async with open_socket(server.ws_url, token) as sock:
            op = await sock.subscribe(EVENTS, {"id": creation_id, "after": last})
            rest = events_of(await sock.collect(op, timeout=30))
        assert_well_formed(rest, after=last)
        final = rest[-1]
        assert final["__typename"] == "CreationCompleted"
        assert final["creation"]["output"] == text_of(events) + text_of(rest)
        assert len(final["creation"]["output"].split()) == 400


async def test_a_socket_with_an_expired_token_starts_nothing(
    server: Server, client: GraphQLClient, settings: Settings
) -> None:
    # given a token that expired a second ago (still inside the verifier's 5 s leeway)
    person = await sign_up(client)
    stale = _auth(settings, ttl=-1).issue(person.id)
    # when a socket is opened with it and asked to write
    code = None
    try:
        async with open_socket(server.ws_url, stale) as sock:
            await sock.subscribe(WRITE, {"input": {"prompt": "too late", "maxTokens": 5}})
            message = await sock.receive(timeout=5)
            assert message["type"] == "error" or message["payload"].get("errors"), message
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None
        code = closed.rcvd.code
    # then it is refused or closed as expired, and nothing was started
    assert code in {None, 4401, 4403}
    assert await creation_ids(client, person.access) == []
