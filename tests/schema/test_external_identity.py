"""Signing in with an external OIDC issuer's RS256 token, through the whole stack."""

from __future__ import annotations

from resolvers.core.models import User
from resolvers.core.settings import Settings
from tests.conftest import open_socket, serving
from tests.resolvers.access.test_oidc import AUDIENCE, Issuer, issuer, rsa
from tests.schema.test_subscriptions import events_of

__all__ = ["issuer"]  # the fixture, imported for these tests

ME = "{ me { id email role } }"


async def test_an_issuer_token_signs_in_a_mapped_user(settings: Settings, issuer: Issuer) -> None:
    changes = {"oidc_issuer": issuer.url + "/", "oidc_audience": AUDIENCE}
    async with serving(settings, **changes) as (server, gql, _local):
        token = issuer.token(sub="auth0|carol", email="carol@example.com", email_verified=True)
        first = (await gql.query(ME, token=token))["me"]
        again = (await gql.query(ME, token=issuer.token(sub="auth0|carol")))["me"]
        assert first == again and first["email"] == "carol@example.com"
        assert first["role"] == "USER"
        row = await User.get(id=first["id"])
        assert row.external_id == f"{issuer.url}/|auth0|carol"
        # it works on the websocket too, and the user's creations are theirs
        async with open_socket(server.ws_url, token) as sock:
            op = await sock.subscribe(
                'subscription { write(input: {prompt: "hi", maxTokens: 3}) { __typename } }'
            )
            events = events_of(await sock.collect(op))
        assert events[-1]["__typename"] == "CreationCompleted"
        # the external account cannot sign in with a password
        login = await gql.query(
            'mutation { login(input: {email: "carol@example.com", password: "anything!"}) '
            "{ __typename } }"
        )
        assert login["login"]["__typename"] == "AuthError"


async def test_bad_issuer_tokens_are_unauthenticated(settings: Settings, issuer: Issuer) -> None:
    changes = {"oidc_issuer": issuer.url + "/", "oidc_audience": AUDIENCE}
    async with serving(settings, **changes) as (_server, gql, _local):
        wrong_audience = issuer.token(aud="https://someone-else.test")
        expired = issuer.token(exp=1_000)
        foreign_key = issuer.token(key=rsa("stranger"))
        for token in (wrong_audience, expired, foreign_key):
            errors = await gql.errors(ME, token=token)
            assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED", errors


async def test_an_email_already_taken_locally_is_never_linked(
    settings: Settings, issuer: Issuer
) -> None:
    changes = {"oidc_issuer": issuer.url + "/", "oidc_audience": AUDIENCE}
    async with serving(settings, **changes) as (_server, gql, _local):
        await gql.register("dave@example.com", "dave's password")
        local = await User.get(email="dave@example.com")
        token = issuer.token(sub="auth0|mallory", email="dave@example.com", email_verified=True)
        mapped = (await gql.query(ME, token=token))["me"]
    assert mapped["id"] != str(local.id) and mapped["email"].endswith("@external.invalid")
