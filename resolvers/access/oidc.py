"""Access tokens of an external OpenID Connect issuer (Auth0...), checked against its JWKS.

    NotAuthenticated (resolvers.core.errors)
     └── ExternalTokenError    the token is not acceptable; `reason` says why
    ServiceUnavailable (resolvers.core.errors)
     └── IssuerUnavailable     no signing keys: the JWKS endpoint failed and nothing is cached

The key set is cached for `cache_ttl` seconds. A token whose `kid` is unknown triggers one
refetch (that is how key rotation reaches us), at most one per `min_refresh_interval`, shared by
every concurrent caller. While the endpoint fails, the keys already cached stay in use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import RSAKey
from joserfc.jwt import JWTClaimsRegistry

from resolvers.core.errors import NotAuthenticated, ServiceUnavailable

log = logging.getLogger(__name__)

# Asymmetric only: with an HMAC algorithm the issuer's public key would become a shared secret.
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
# JWK members the verifier needs; certificates (x5c, x5t) are not used and not parsed.
_JWK_MEMBERS = ("kty", "kid", "use", "alg", "key_ops", "n", "e")

Reason = Literal[
    "malformed",
    "algorithm",
    "unknown_key",
    "signature",
    "expired",
    "not_yet_valid",
    "issuer",
    "audience",
    "claims",
]

Fetch = Callable[[str], Awaitable[object]]
"""Returns the decoded JSON at a JWKS URL; raises httpx.HTTPError, OSError or ValueError."""


class ExternalTokenError(NotAuthenticated):
    """The issuer's token is not acceptable; the message is safe to show to the caller."""

    def __init__(self, message: str, *, reason: Reason) -> None:
        super().__init__(message)
        self.reason: Reason = reason


class IssuerUnavailable(ServiceUnavailable):
    """The issuer's signing keys could not be fetched and none are cached: retry later."""


@dataclass(frozen=True)
class OIDCConfig:
    """One trusted issuer and the audience of our API; durations in seconds.

    `jwks_url` defaults to the issuer's `.well-known/jwks.json`; it must be https unless on
    loopback. `email_claim` can name a namespaced custom claim (Auth0 access tokens).
    """

    issuer: str
    audience: str
    jwks_url: str = ""
    algorithms: tuple[str, ...] = ("RS256",)
    leeway: int = 30
    cache_ttl: float = 600
    min_refresh_interval: float = 30
    timeout: float = 5
    email_claim: str = "email"
    email_verified_claim: str = "email_verified"

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise ValueError("OIDC issuer and audience must both be set")
        if not self.jwks_url:
            url = self.issuer.rstrip("/") + "/.well-known/jwks.json"
            object.__setattr__(self, "jwks_url", url)
        parts = urlsplit(self.jwks_url)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
            raise ValueError("OIDC jwks_url must use https (plain http only on loopback)")
        algorithms = tuple(self.algorithms)
        if not algorithms or not set(algorithms) <= RSA_ALGORITHMS:
            raise ValueError(f"OIDC algorithms must be among {sorted(RSA_ALGORITHMS)}")
        object.__setattr__(self, "algorithms", algorithms)
        if self.leeway < 0 or self.min_refresh_interval < 0:
            raise ValueError("OIDC leeway and min_refresh_interval must not be negative")
        if self.cache_ttl <= 0 or self.timeout <= 0:
            raise ValueError("OIDC cache_ttl and timeout must be positive")


@dataclass(frozen=True)
class ExternalIdentity:
    """Who the issuer vouches for; (issuer, subject) is the stable key, never the e-mail."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    scopes: frozenset[str]
    expires_at: int


class OIDCVerifier:
    """Verifies the issuer's access tokens; keep one per process, it owns the key cache.

    `fetch` replaces the HTTP download of the key set; `clock` (monotonic seconds) drives the
    cache and the refresh rate limit, so tests can move time.
    """

    def __init__(
        self,
        config: OIDCConfig,
        *,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._fetch = fetch or self._fetch_over_http
        self._clock = clock
        self._keys: dict[str, RSAKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._attempts = 0
        self._lock = asyncio.Lock()
        self._claims = JWTClaimsRegistry(
            leeway=config.leeway,
            iss={"essential": True, "value": config.issuer},
            aud={"essential": True, "value": config.audience},
            sub={"essential": True},
            exp={"essential": True},
        )

    async def verify(self, token: str) -> ExternalIdentity:
        """The identity in a valid token; ExternalTokenError or IssuerUnavailable otherwise."""
        header = _header(token)
        # Checked before any key lookup, so forged algorithms never cause a JWKS fetch.
        if header.get("alg") not in self._config.algorithms:
            raise ExternalTokenError("token algorithm is not accepted", reason="algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ExternalTokenError("token names no signing key", reason="unknown_key")
        key = await self._key(kid)
        try:
            claims = jwt.decode(token, key, algorithms=self._config.algorithms).claims
        except BadSignatureError as exc:
            raise ExternalTokenError("token signature is invalid", reason="signature") from exc
        except (JoseError, ValueError) as exc:
            raise ExternalTokenError("token is malformed", reason="malformed") from exc
        self._validate(claims)
        return ExternalIdentity(
            issuer=self._config.issuer,
            subject=str(claims["sub"]),
            email=_string_or_none(claims.get(self._config.email_claim)),
            email_verified=claims.get(self._config.email_verified_claim) is True,
            scopes=_scopes(claims),
            expires_at=int(claims["exp"]),
        )

    def _validate(self, claims: dict[str, Any]) -> None:
        try:
            self._claims.validate(claims)
        except ExpiredTokenError as exc:
            raise ExternalTokenError("token has expired", reason="expired") from exc
        except MissingClaimError as exc:
            reason = _CLAIM_REASONS.get(exc.claim, "claims")
            raise ExternalTokenError(f"token lacks the {exc.claim} claim", reason=reason) from exc
        except InvalidClaimError as exc:
            reason = _CLAIM_REASONS.get(exc.claim, "claims")
            raise ExternalTokenError(_CLAIM_MESSAGES[reason], reason=reason) from exc

    async def _key(self, kid: str) -> RSAKey:
        fetched = await self._refresh() if self._stale() else False
        key = self._keys.get(kid)
        if key is None and not fetched:
            # The issuer may sign with a key published after our last fetch (rotation).
            await self._refresh()
            key = self._keys.get(kid)
        if key is not None:
            return key
        if not self._keys:
            raise IssuerUnavailable("the identity provider's keys are unavailable; retry later")
        raise ExternalTokenError("token is signed with an unknown key", reason="unknown_key")

    def _stale(self) -> bool:
        fetched = self._fetched_at
        return fetched is None or self._clock() - fetched >= self._config.cache_ttl

    async def _refresh(self) -> bool:
        """Fetch the key set: False when rate-limited, True when we or a concurrent caller did."""
        attempts = self._attempts
        async with self._lock:
            if self._attempts != attempts:
                return True
            last = self._attempted_at
            if last is not None and self._clock() - last < self._config.min_refresh_interval:
                return False
            try:
                keys = await self._download()
            except IssuerUnavailable as exc:
                cause = f" ({exc.__cause__!r})" if exc.__cause__ else ""
                log.warning("%s%s; %d cached keys stay in use", exc, cause, len(self._keys))
            else:
                self._keys = keys
                self._fetched_at = self._clock()
            # Not reached when cancelled: a waiting caller then fetches instead.
            self._attempted_at = self._clock()
            self._attempts += 1
            return True

    async def _download(self) -> dict[str, RSAKey]:
        url = self._config.jwks_url
        try:
            async with asyncio.timeout(self._config.timeout):
                document = await self._fetch(url)
        except (httpx.HTTPError, OSError, ValueError) as exc:  # TimeoutError is an OSError
            raise IssuerUnavailable(f"cannot fetch the JWKS at {url}") from exc
        keys = _parse_key_set(document, self._config.algorithms)
        if not keys:
            raise IssuerUnavailable(f"the JWKS at {url} holds no usable signing key")
        return keys

    async def _fetch_over_http(self, url: str) -> object:
        # Fetches are rare (cache_ttl, rate limit), so a client per fetch keeps no lifecycle.
        async with httpx.AsyncClient(timeout=self._config.timeout) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            return response.json()


_CLAIM_REASONS: dict[str, Reason] = {
    "iss": "issuer",
    "aud": "audience",
    "nbf": "not_yet_valid",
    "iat": "not_yet_valid",
}
_CLAIM_MESSAGES: dict[Reason, str] = {
    "issuer": "token was issued by another issuer",
    "audience": "token is meant for another audience",
    "not_yet_valid": "token is not valid yet",
    "claims": "token claims are invalid",
}


def _header(token: str) -> dict[str, Any]:
    try:
        return dict(jws.extract_compact(token.encode("ascii")).headers())
    except (JoseError, ValueError) as exc:
        raise ExternalTokenError("token is not a signed JWT", reason="malformed") from exc


def _parse_key_set(document: object, algorithms: tuple[str, ...]) -> dict[str, RSAKey]:
    """The usable RSA signing keys by kid; entries we cannot use are skipped, not fatal."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return {}
    keys: dict[str, RSAKey] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        kid, use, alg = entry.get("kid"), entry.get("use", "sig"), entry.get("alg")
        if not isinstance(kid, str) or not kid or use != "sig":
            continue
        if alg is not None and alg not in algorithms:
            continue
        try:
            keys[kid] = RSAKey.import_key({k: entry[k] for k in _JWK_MEMBERS if k in entry})
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("JWKS key %r skipped: %s", kid, exc)
    return keys


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """`scope` (space-separated, OAuth 2), `scp` (a string: Azure AD; a list: Okta) and
    `permissions` (Auth0 RBAC), merged."""
    found: set[str] = set()
    for name in ("scope", "scp", "permissions"):
        value = claims.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, str) and name != "permissions":
            found.update(value.split())
        elif isinstance(value, list) and name != "scope" and all(isinstance(v, str) for v in value):
            found.update(value)
        else:
            raise ExternalTokenError("token scopes are malformed", reason="claims")
    return frozenset(found)


def _string_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
