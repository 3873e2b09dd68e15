"""Issue 11, low: OIDC. An unverified `email` claim took a local address, token scopes were
ignored, and an OIDC session could not log out. Now only a verified address labels an
account, the token's scopes bound what it may do, and logout revokes the token (and closes
its sockets) until it expires."""

from __future__ import annotations

from typing import Any

from resolvers.access.scopes import external_scopes
from resolvers.core.settings import Settings
from tests.conftest import open_socket, serving
from tests.resolvers.access.test_oidc import AUDIENCE, Issuer, issuer
from tests.schema.test_sessions import LOGOUT, REGISTER
from tests.security.test_revocation import close_code

__all__ = ["issuer"]  # the fixture, imported for these tests

ME = "{ me { id email } }"
WRITE = """
mutation { write(input: {prompt: "hello", maxTokens: 3}) { __typename ... on Error { code } } }
"""
CREATIONS = "{ creations(first: 5) { edges { node { id } } } }"
NEW_KEY = """
mutation { createApiKey(input: {name: "k", scopes: ["creations:read"]}) {
  __typename ... on Error { code } } }
"""


def oidc(issuer: Issuer) -> dict[str, Any]:
    return {"oidc_issuer": issuer.url + "/", "oidc_audience": AUDIENCE}


async def test_an_unverified_email_claim_takes_no_local_address(
    settings: Settings, issuer: Issuer
) -> None:
    async with serving(settings, **oidc(issuer)) as (_server, gql, _token):
        # when an issuer's token claims an address it has not verified
        claimed = issuer.token(sub="auth0|mallory", email="erin@example.com")
        mapped = (await gql.query(ME, token=claimed))["me"]
        # then the account gets a placeholder, and the owner can still register it
        assert mapped["email"].endswith("@external.invalid")
        password = {"email": "erin@example.com", "password": "correct horse battery"}
        registered = await gql.query(REGISTER, password)
        assert registered["register"]["__typename"] == "AuthSession", registered
        # while a verified address labels the new account
        verified = issuer.token(sub="auth0|frank", email="frank@example.com", email_verified=True)
        assert (await gql.query(ME, token=verified))["me"]["email"] == "frank@example.com"


async def test_the_tokens_scopes_bound_what_it_may_do(settings: Settings, issuer: Issuer) -> None:
    async with serving(settings, **oidc(issuer)) as (_server, gql, _token):
        reader = issuer.token(sub="auth0|grace", scope="openid creations:read")
        # a token for reading cannot create, nor mint itself a key
        assert (await gql.query(WRITE, token=reader))["write"] == {
            "__typename": "AuthError",
            "code": "FORBIDDEN",
        }
        assert (await gql.query(NEW_KEY, token=reader))["createApiKey"]["code"] == "FORBIDDEN"
        assert (await gql.query(CREATIONS, token=reader))["creations"]["edges"] == []
        # Auth0's spelling of the same scopes works, and writing creations may create
        writer = issuer.token(sub="auth0|grace", scope="openid read:creations write:creations")
        assert (await gql.query(WRITE, token=writer))["write"]["__typename"] == "Creation"
        assert len((await gql.query(CREATIONS, token=reader))["creations"]["edges"]) == 1
        # a token naming none of our scopes is a person's own session
        person = issuer.token(sub="auth0|grace", scope="openid profile email")
        assert (await gql.query(NEW_KEY, token=person))["createApiKey"]["__typename"] == (
            "NewApiKey"
        )


async def test_logout_revokes_the_token_and_closes_its_sockets(
    settings: Settings, issuer: Issuer
) -> None:
    async with serving(settings, **oidc(issuer)) as (server, gql, _token):
        token = issuer.token(sub="auth0|heidi", scope="openid creations:read")
        assert (await gql.query(ME, token=token))["me"]["id"]
        async with open_socket(server.ws_url, token) as sock:
            # when the token logs out (scoped or not, logging out is always allowed)
            assert (await gql.query(LOGOUT, token=token))["logout"] == {
                "__typename": "LoggedOut",
                "ok": True,
            }
            # then its socket closes as revoked
            code, _seen = await close_code(sock)
        assert code == 4403
        # and the token is refused over HTTP from now until it expires
        errors = await gql.errors(ME, token=token)
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
        # while a new token of the same person works
        fresh = issuer.token(sub="auth0|heidi", jti="another")
        assert (await gql.query(ME, token=fresh))["me"]["id"]


async def test_scp_claims_count_as_scopes(settings: Settings, issuer: Issuer) -> None:
    async with serving(settings, **oidc(issuer)) as (_server, gql, _token):
        for scp in ("creations:read", ["creations:read"]):  # Azure AD's string, Okta's list
            reader = issuer.token(sub="auth0|ivan", scp=scp)
            write = (await gql.query(WRITE, token=reader))["write"]
            assert write == {"__typename": "AuthError", "code": "FORBIDDEN"}, scp


def test_issuer_scopes_map_to_ours() -> None:
    assert external_scopes(["openid", "profile"]) is None
    assert external_scopes(["openid", "read:lexicons", "presets:write"]) == {
        "lexicons:read",
        "presets:write",
    }
    assert external_scopes(["write:creations", "tools:translate"]) == {"tools:*", "tools:translate"}
    assert external_scopes(["creations:delete", "tools:"]) is None
