"""Issue 11, low: a token of a deleted user answered INTERNAL, or "you have a lexicon with
this name" (the insert failed on the missing owner). Every path now answers the typed
UNAUTHENTICATED error: the account is gone."""

from __future__ import annotations

from typing import Any

from resolvers.core.models import User
from resolvers.core.settings import Settings
from tests.conftest import open_socket, serving
from tests.schema.test_lexicons import CREATE as CREATE_LEXICON
from tests.schema.test_oauth import new_key, request_token
from tests.security.test_revocation import answer, error_code

ME = "{ me { id } }"
LEXICONS = "{ lexicons { id } }"
WRITE = """
mutation { write(input: {prompt: "hello", maxTokens: 3}) { __typename ... on Error { code } } }
"""
LEXICON = {
    "input": {
        "name": "gone",
        "sourceLang": "en",
        "targetLang": "zh",
        "entries": [{"source": "a", "target": "b"}],
    }
}


def code_of(body: dict[str, Any], field: str) -> str:
    """UNAUTHENTICATED and the like, from a GraphQL error or a union's Error member."""
    if body.get("errors"):
        return str(body["errors"][0]["extensions"]["code"])
    result = body["data"][field]
    return str(result.get("code") or result["__typename"])


async def test_a_deleted_users_token_is_unauthenticated_everywhere(settings: Settings) -> None:
    async with serving(settings) as (server, gql, token):
        me = (await gql.query(ME, token=token))["me"]["id"]
        made = await new_key(gql, token, ["tools:write", "lexicons:write"])
        oauth = (await request_token(server, made["key"]["clientId"], made["secret"])).json()
        async with open_socket(server.ws_url, token) as sock:
            assert (await answer(sock, ME))["payload"]["data"]["me"]["id"] == me
            # when the account is deleted while its tokens, key and socket live
            await User.filter(id=me).delete()
            # then its open socket refuses what needs the account: `me`, and any write
            for document in (ME, WRITE):
                refused = await answer(sock, document)
                assert error_code(refused) == "UNAUTHENTICATED", refused
        # and over HTTP, the key and its OAuth token (deleted with the account) are refused
        # everything, and the session token everything that needs the account; never
        # INTERNAL, never a name clash. Reads of the account's things find nothing.
        for credential in (token, made["secret"], oauth["access_token"]):
            for document, variables, field in (
                (ME, None, "me"),
                (CREATE_LEXICON, LEXICON, "createLexicon"),
                (WRITE, None, "write"),
            ):
                body = (await gql.raw(document, variables, credential)).json()
                assert code_of(body, field) == "UNAUTHENTICATED", (field, body)
            body = (await gql.raw(LEXICONS, None, credential)).json()
            if credential == token:
                assert body == {"data": {"lexicons": []}}, body
            else:
                assert code_of(body, "lexicons") == "UNAUTHENTICATED", body
