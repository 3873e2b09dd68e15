"""External OIDC tokens: RS256 against a JWKS served by a local issuer, rotation and caching."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import Key, KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from resolvers.access.oidc import (
    ExternalIdentity,
    ExternalTokenError,
    IssuerUnavailable,
    OIDCConfig,
    OIDCVerifier,
)
from resolvers.core.errors import NotAuthenticated, ServiceUnavailable
from tests.conftest import Server, free_port

AUDIENCE = "https://api.creation-king.test"


@functools.cache
def rsa(kid: str) -> RSAKey:
    """A private RSA key per kid, generated once per test process (generation is slow)."""
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


class Clock:
    """Monotonic time the test moves by hand: drives the JWKS cache and the rate limit."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Issuer:
    """A JWKS endpoint on 127.0.0.1 whose keys, outage and pacing the test controls."""

    def __init__(self) -> None:
        self.keys: list[Key] = [rsa("k1")]
        self.fetches = 0
        self.down = False
        self.requested = asyncio.Event()
        self.release: asyncio.Event | None = None
        self.app = Starlette(routes=[Route("/.well-known/jwks.json", self._jwks)])
        self.url = ""

    async def _jwks(self, request: Request) -> JSONResponse:
        self.fetches += 1
        self.requested.set()
        if self.release is not None:
            await self.release.wait()
        if self.down:
            return JSONResponse({"error": "maintenance"}, status_code=503)
        return JSONResponse(KeySet(self.keys).as_dict(private=False))

    def token(
        self, key: RSAKey | None = None, header: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        """A token of this issuer for our audience, valid for an hour unless claims override."""
        key = key or rsa("k1")
        now = int(time.time())
        payload = {
            "iss": self.url + "/",
            "sub": "auth0|alice",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 3600,
            **claims,
        }
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode({"alg": "RS256", "kid": key.kid, **(header or {})}, payload, key)

    def verifier(self, clock: Clock, **config: Any) -> OIDCVerifier:
        return OIDCVerifier(
            OIDCConfig(issuer=self.url + "/", audience=AUDIENCE, **config), clock=clock
        )


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    fake = Issuer()
    async with Server(fake.app) as server:
        fake.url = server.url
        yield fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def rejected(verifier: OIDCVerifier, token: str) -> str:
    """The reason the verifier gives for refusing `token`."""
    with pytest.raises(ExternalTokenError) as caught:
        await verifier.verify(token)
    return caught.value.reason


def unsigned(header: dict[str, Any], claims: dict[str, Any], sign: bytes | None = None) -> str:
    """A compact JWT built by hand: `sign` is an HMAC-SHA256 secret, None leaves it unsigned."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = b""
    if sign is not None:
        signature = hmac.new(sign, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def test_a_valid_token_maps_to_a_stable_external_identity(
    issuer: Issuer, clock: Clock
) -> None:
    verifier = issuer.verifier(clock)
    token = issuer.token(email="alice@example.com", email_verified=True)

    identity = await verifier.verify(token)

    assert identity == ExternalIdentity(
        issuer=issuer.url + "/",
        subject="auth0|alice",
        email="alice@example.com",
        email_verified=True,
        scopes=frozenset(),
        expires_at=jwt.decode(token, rsa("k1")).claims["exp"],
    )
    assert issuer.fetches == 1


async def test_scopes_come_from_scope_and_auth0_permissions(issuer: Issuer, clock: Clock) -> None:
    # Auth0 puts custom claims such as the e-mail of an access token under a namespace.
    verifier = issuer.verifier(clock, email_claim="https://ck.test/email")
    namespaced: dict[str, Any] = {"https://ck.test/email": "bob@example.com"}
    token = issuer.token(
        scope="openid read:creations  write:creations",
        permissions=["read:creations", "admin:presets"],
        **namespaced,
    )

    identity = await verifier.verify(token)

    assert identity.scopes == {"openid", "read:creations", "write:creations", "admin:presets"}
    assert (identity.email, identity.email_verified) == ("bob@example.com", False)
    assert await rejected(verifier, issuer.token(permissions="admin")) == "claims"


async def test_time_claims_are_checked_with_leeway(issuer: Issuer, clock: Clock) -> None:
    verifier = issuer.verifier(clock, leeway=30)
    now = int(time.time())

    assert await rejected(verifier, issuer.token(exp=now - 120)) == "expired"
    assert await rejected(verifier, issuer.token(nbf=now + 120)) == "not_yet_valid"
    assert await rejected(verifier, issuer.token(exp=None)) == "claims"
    # Clock skew within the leeway is tolerated.
    assert (await verifier.verify(issuer.token(exp=now - 5, nbf=now + 5))).expires_at == now - 5


async def test_issuer_audience_and_subject_are_required(issuer: Issuer, clock: Clock) -> None:
    verifier = issuer.verifier(clock)

    assert await rejected(verifier, issuer.token(iss="https://evil.auth0.com/")) == "issuer"
    assert await rejected(verifier, issuer.token(iss=issuer.url)) == "issuer"  # no final slash
    assert await rejected(verifier, issuer.token(aud="https://other.api")) == "audience"
    assert await rejected(verifier, issuer.token(aud=None)) == "audience"
    assert await rejected(verifier, issuer.token(aud=["https://a", "https://b"])) == "audience"
    assert await rejected(verifier, issuer.token(sub=None)) == "claims"
    assert await rejected(verifier, issuer.token(sub="")) == "claims"


async def test_an_audience_list_naming_us_is_accepted(issuer: Issuer, clock: Clock) -> None:
    verifier = issuer.verifier(clock)
    token = issuer.token(aud=[AUDIENCE, f"{issuer.url}/userinfo"])

    assert (await verifier.verify(token)).subject == "auth0|alice"


async def test_a_signature_by_another_key_with_the_same_kid_fails(
    issuer: Issuer, clock: Clock
) -> None:
    verifier = issuer.verifier(clock)
    forged = issuer.token(key=rsa("attacker"), header={"kid": "k1"})
    genuine = issuer.token().split(".")
    tampered = issuer.token(sub="auth0|mallory").split(".")

    assert await rejected(verifier, forged) == "signature"
    assert await rejected(verifier, ".".join([genuine[0], tampered[1], genuine[2]])) == "signature"
    assert await rejected(verifier, "not-a-jwt") == "malformed"


async def test_alg_none_is_refused_without_touching_the_issuer(
    issuer: Issuer, clock: Clock
) -> None:
    verifier = issuer.verifier(clock)
    claims = jwt.decode(issuer.token(), rsa("k1")).claims

    for alg in ("none", "None", "NONE"):
        token = unsigned({"alg": alg, "kid": "k1", "typ": "JWT"}, claims)
        assert await rejected(verifier, token) == "algorithm"
    assert issuer.fetches == 0


async def test_hs256_signed_with_the_public_key_pem_is_refused(
    issuer: Issuer, clock: Clock
) -> None:
    # The alg-confusion attack: a verifier that lets the token choose HMAC would use the public
    # key, which anyone can download, as the shared secret.
    verifier = issuer.verifier(clock)
    await verifier.verify(issuer.token())
    claims = jwt.decode(issuer.token(sub="auth0|root"), rsa("k1")).claims
    public = rsa("k1").as_pem(private=False)
    jwks_n = KeySet([rsa("k1")]).as_dict()["keys"][0]["n"]

    for secret in (public, public.strip(), str(jwks_n).encode()):
        token = unsigned({"alg": "HS256", "kid": "k1", "typ": "JWT"}, claims, sign=secret)
        assert await rejected(verifier, token) == "algorithm"
    for unsafe in (("HS256",), ("none",), ("RS256", "HS256"), ()):
        with pytest.raises(ValueError, match="algorithms"):
            OIDCConfig(issuer=issuer.url + "/", audience=AUDIENCE, algorithms=unsafe)


async def test_rotation_refetches_for_a_new_kid_and_drops_removed_keys(
    issuer: Issuer, clock: Clock
) -> None:
    verifier = issuer.verifier(clock, cache_ttl=600, min_refresh_interval=30)
    old, new = rsa("k1"), rsa("k2")
    assert (await verifier.verify(issuer.token(old))).subject == "auth0|alice"

    # Given the issuer publishes its next key and starts signing with it
    issuer.keys = [old, new]
    clock.advance(31)
    # then the unknown kid makes the verifier fetch once more, and the token is accepted.
    assert (await verifier.verify(issuer.token(new))).subject == "auth0|alice"
    assert issuer.fetches == 2

    # Given the old key is withdrawn, tokens it signed pass until the cache expires...
    issuer.keys = [new]
    assert (await verifier.verify(issuer.token(old))).subject == "auth0|alice"
    assert issuer.fetches == 2
    clock.advance(600)
    # ...and then fail: one fetch refreshes the cache, and its kid is no longer published.
    assert await rejected(verifier, issuer.token(old)) == "unknown_key"
    assert issuer.fetches == 3
    assert (await verifier.verify(issuer.token(new))).subject == "auth0|alice"
    assert issuer.fetches == 3


async def test_unknown_kids_refetch_at_most_once_per_interval(issuer: Issuer, clock: Clock) -> None:
    verifier = issuer.verifier(clock, min_refresh_interval=30)
    await verifier.verify(issuer.token())
    stranger = rsa("attacker")

    async def flood() -> list[str]:
        tokens = [issuer.token(stranger, header={"kid": uuid.uuid4().hex}) for _ in range(50)]
        return await asyncio.gather(*(rejected(verifier, token) for token in tokens))

    assert set(await flood()) == {"unknown_key"}
    assert issuer.fetches == 1  # the last fetch was less than 30 s ago
    clock.advance(31)
    assert set(await flood()) == {"unknown_key"}
    assert issuer.fetches == 2  # one refetch shared by the 50 tokens
    clock.advance(10)
    assert set(await flood()) == {"unknown_key"}
    assert issuer.fetches == 2
    assert (await verifier.verify(issuer.token())).subject == "auth0|alice"


async def test_concurrent_verifications_share_one_fetch(issuer: Issuer, clock: Clock) -> None:
    # No rate limit: the sharing alone must keep the 20 cold verifications to one fetch.
    verifier = issuer.verifier(clock, min_refresh_interval=0)
    issuer.release = asyncio.Event()
    tokens = [issuer.token(sub=f"auth0|user{i}") for i in range(20)]

    tasks = [asyncio.create_task(verifier.verify(token)) for token in tokens]
    async with asyncio.timeout(5):
        await issuer.requested.wait()
    issuer.release.set()
    async with asyncio.timeout(5):
        identities = await asyncio.gather(*tasks)

    assert [identity.subject for identity in identities] == [f"auth0|user{i}" for i in range(20)]
    assert issuer.fetches == 1


async def test_a_cancelled_caller_does_not_fail_the_ones_waiting(
    issuer: Issuer, clock: Clock
) -> None:
    verifier = issuer.verifier(clock)
    issuer.release = asyncio.Event()
    first = asyncio.create_task(verifier.verify(issuer.token(sub="auth0|first")))
    async with asyncio.timeout(5):
        await issuer.requested.wait()
    second = asyncio.create_task(verifier.verify(issuer.token(sub="auth0|second")))

    # When the caller whose request runs the fetch goes away (a client disconnects)
    first.cancel()
    issuer.release.set()

    # then a waiting caller fetches in its place.
    async with asyncio.timeout(5):
        assert (await second).subject == "auth0|second"
    assert first.cancelled()
    assert issuer.fetches == 2


async def test_cached_keys_outlive_an_issuer_outage(issuer: Issuer, clock: Clock) -> None:
    verifier = issuer.verifier(clock, cache_ttl=600, min_refresh_interval=30)
    await verifier.verify(issuer.token())

    issuer.down = True
    clock.advance(601)

    assert (await verifier.verify(issuer.token())).subject == "auth0|alice"
    assert issuer.fetches == 2  # the expired cache was refreshed, in vain
    assert (await verifier.verify(issuer.token())).subject == "auth0|alice"
    assert issuer.fetches == 2  # and is not retried before min_refresh_interval


async def test_without_cached_keys_an_outage_is_issuer_unavailable(
    issuer: Issuer, clock: Clock
) -> None:
    verifier = issuer.verifier(clock, min_refresh_interval=30)
    issuer.down = True

    with pytest.raises(IssuerUnavailable) as caught:
        await verifier.verify(issuer.token())
    assert isinstance(caught.value, ServiceUnavailable)
    assert caught.value.code == "SERVICE_UNAVAILABLE"
    with pytest.raises(IssuerUnavailable):
        await verifier.verify(issuer.token())
    assert issuer.fetches == 1  # the outage is not hammered

    issuer.down = False
    clock.advance(31)
    assert (await verifier.verify(issuer.token())).subject == "auth0|alice"


async def test_an_unreachable_or_garbled_jwks_is_issuer_unavailable() -> None:
    closed = f"http://127.0.0.1:{free_port()}/"
    verifier = OIDCVerifier(OIDCConfig(issuer=closed, audience=AUDIENCE, timeout=2))
    token = jwt.encode({"alg": "RS256", "kid": "k1"}, {"sub": "x"}, rsa("k1"))
    with pytest.raises(IssuerUnavailable):
        await verifier.verify(token)

    documents: list[object] = [
        {"keys": []},
        {"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]},
        {"keys": [{**rsa("k1").as_dict(private=False), "use": "enc"}]},
        {"keys": [{**rsa("k1").as_dict(private=False), "n": "!!"}]},
        ["not", "a", "key", "set"],
    ]
    for document in documents:

        async def fetch(url: str, document: object = document) -> object:
            return document

        garbled = OIDCVerifier(OIDCConfig(issuer=closed, audience=AUDIENCE), fetch=fetch)
        with pytest.raises(IssuerUnavailable):
            await garbled.verify(token)


async def test_a_hanging_jwks_endpoint_times_out() -> None:
    async def hang(url: str) -> object:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    config = OIDCConfig(issuer="https://tenant.auth0.com/", audience=AUDIENCE, timeout=0.1)
    verifier = OIDCVerifier(config, fetch=hang)
    token = jwt.encode({"alg": "RS256", "kid": "k1"}, {"sub": "x"}, rsa("k1"))

    async with asyncio.timeout(5):
        with pytest.raises(IssuerUnavailable):
            await verifier.verify(token)


def test_config_defaults_and_refusals() -> None:
    config = OIDCConfig(issuer="https://tenant.auth0.com/", audience=AUDIENCE)
    assert config.jwks_url == "https://tenant.auth0.com/.well-known/jwks.json"
    assert (config.algorithms, config.cache_ttl, config.min_refresh_interval) == (
        ("RS256",),
        600,
        30,
    )
    assert config.timeout == 5
    bare = OIDCConfig(issuer="https://tenant.auth0.com", audience=AUDIENCE)
    assert bare.jwks_url == "https://tenant.auth0.com/.well-known/jwks.json"

    with pytest.raises(ValueError, match="https"):
        OIDCConfig(issuer="http://tenant.auth0.com/", audience=AUDIENCE)
    with pytest.raises(ValueError, match="audience"):
        OIDCConfig(issuer="https://tenant.auth0.com/", audience="")
    with pytest.raises(ValueError, match="cache_ttl"):
        OIDCConfig(issuer="https://tenant.auth0.com/", audience=AUDIENCE, cache_ttl=0)


def test_errors_belong_to_the_domain_hierarchy() -> None:
    error = ExternalTokenError("token has expired", reason="expired")
    assert isinstance(error, NotAuthenticated)
    assert (error.code, error.message, error.reason) == (
        "UNAUTHENTICATED",
        "token has expired",
        "expired",
    )
