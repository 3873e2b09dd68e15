"""The audit log: every mutation recorded with its outcome, admins only, append-only."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from tortoise import connections

from resolvers.core.models import AuditEntry, Role, User
from tests.conftest import GraphQLClient, Server, open_socket

LOGIN = """
mutation L($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) {
    __typename ... on AuthSession { accessToken user { id } } ... on Error { code }
  }
}
"""
WRITE = """
mutation { write(input: {prompt: "audit me", maxTokens: 5}, wait: true) {
  ... on Creation { id } } }
"""
LOG = """
query A($first: Int!, $after: String, $where: AuditFilter) {
  auditLog(first: $first, after: $after, where: $where) {
    entries { id actorId keyId operation tool objectIds outcome client }
    hasNextPage endCursor
  }
}
"""
NEW_KEY = """
mutation { createApiKey(input: {name: "k", scopes: ["tools:write"]}) {
  ... on NewApiKey { secret key { id } } } }
"""


async def admin_token(client: GraphQLClient) -> tuple[str, str]:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    await client.register(email, "admin password")
    await User.filter(email=email).update(role=Role.ADMIN)
    login = await client.query(LOGIN, {"email": email, "password": "admin password"})
    session = login["login"]
    return session["accessToken"], session["user"]["id"]


async def entries_of(actor_id: str) -> list[AuditEntry]:
    return await AuditEntry.filter(actor_id=actor_id).order_by("id")


async def test_mutations_are_recorded_with_outcome_objects_and_client(
    server: Server, client: GraphQLClient
) -> None:
    email = f"who-{uuid.uuid4().hex[:8]}@example.com"
    token = await client.register(email, "right password")
    user = await User.get(email=email)
    creation = (await client.query(WRITE, token=token))["write"]
    await client.query(LOGIN, {"email": email, "password": "wrong password"})
    async with open_socket(server.ws_url, token) as sock:
        op = await sock.subscribe(
            'subscription { write(input: {prompt: "x", maxTokens: 3}) { __typename } }'
        )
        await sock.collect(op)
    for _ in range(100):  # a stream's entry is written beside it, a moment later
        mine = await entries_of(str(user.id))
        if len(mine) >= 2:
            break
        await asyncio.sleep(0.02)
    assert [(e.operation, e.tool, e.outcome) for e in mine] == [
        ("write", "write", "OK"),
        ("write", "write", "OK"),
    ]
    assert mine[0].object_ids == [creation["id"]] and mine[0].client == "127.0.0.1"
    anonymous = await AuditEntry.filter(actor_id=None).order_by("-id").limit(10)
    assert ("login", "INVALID_CREDENTIALS") in [(e.operation, e.outcome) for e in anonymous]
    assert ("register", "OK") in [(e.operation, e.outcome) for e in anonymous]


async def test_refusals_are_recorded(client: GraphQLClient, token: str) -> None:
    made = (await client.query(NEW_KEY, token=token))["createApiKey"]
    user_id = (await client.query("{ me { id } }", token=token))["me"]["id"]
    refused = await client.raw(
        'mutation { translate(input: {text: "hi", targetLang: "zh"}) { __typename '
        "... on Error { code } } }",
        token=made["secret"],
    )
    assert refused.json()["data"]["translate"]["code"] == "FORBIDDEN"
    last = await AuditEntry.filter(actor_id=user_id).order_by("-id").first()
    assert last is not None
    assert (last.operation, last.outcome, str(last.key_id)) == (
        "translate",
        "FORBIDDEN",
        made["key"]["id"],
    )


async def test_no_secret_or_content_reaches_the_log(client: GraphQLClient) -> None:
    token = await client.register(f"s-{uuid.uuid4().hex[:8]}@example.com", "hunter2 secret")
    made = (await client.query(NEW_KEY, token=token))["createApiKey"]
    await client.query(WRITE, token=token)
    rows = await AuditEntry.all().order_by("-id").limit(50).values()
    dumped = json.dumps(rows, default=str)
    for secret in ("hunter2 secret", made["secret"], "audit me", token):
        assert secret not in dumped


async def test_only_admins_read_the_log_with_filters_and_pages(
    client: GraphQLClient, token: str
) -> None:
    errors = await client.errors(LOG, {"first": 5}, token)
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
    user_id = (await client.query("{ me { id } }", token=token))["me"]["id"]
    for _ in range(3):
        await client.query(WRITE, token=token)
    admin, _ = await admin_token(client)
    where = {"actorId": user_id, "operation": "write"}
    first = (await client.query(LOG, {"first": 2, "where": where}, admin))["auditLog"]
    rest = (
        await client.query(LOG, {"first": 2, "after": first["endCursor"], "where": where}, admin)
    )["auditLog"]
    assert first["hasNextPage"] and not rest["hasNextPage"]
    seen = first["entries"] + rest["entries"]
    assert len(seen) == 3 and {e["actorId"] for e in seen} == {user_id}
    assert [int(e["id"]) for e in seen] == sorted((int(e["id"]) for e in seen), reverse=True)
    bad = await client.errors(LOG, {"first": 500}, admin)
    assert bad[0]["extensions"]["code"] == "INVALID_INPUT"


@pytest.mark.parametrize(
    "sql",
    ["UPDATE audit_log SET outcome = 'OK'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
)
async def test_the_database_refuses_to_change_the_log(
    client: GraphQLClient, token: str, sql: str
) -> None:
    await client.query(WRITE, token=token)
    before = await AuditEntry.all().count()
    with pytest.raises(Exception, match="append-only"):
        await connections.get("default").execute_script(sql)
    assert await AuditEntry.all().count() == before
