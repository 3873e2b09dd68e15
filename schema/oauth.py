"""POST /oauth/token: the OAuth2 client-credentials grant (RFC 6749 §4.4) through authlib.

A partner's API key is its client: client id `ck_<prefix>`, client secret the whole key,
sent with HTTP Basic or in the form (`client_secret_basic`, `client_secret_post`). The
answer is one of our short-lived access tokens carrying the key's scopes (or the subset
asked for with `scope`). authlib runs the protocol: request checks, client
authentication, scope checks and RFC-shaped errors; the client row is loaded before it
runs because authlib's server is synchronous and the database is not.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import scope_to_list
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resolvers.access import audit
from resolvers.access.apikeys import client_id_of, find_key
from resolvers.access.auth import Auth, Principal
from resolvers.access.limits import RateLimiter
from resolvers.access.throttle import Locked, client_of
from resolvers.core.errors import NotAuthenticated, RateLimited, ServiceUnavailable
from resolvers.core.models import ApiKey, Role
from resolvers.resources import Core
from schema.auth import client_address, signin_throttle
from schema.strings import refusal

MAX_FORM_BYTES = 4_096


class _Client(ClientMixin):  # type: ignore[misc]
    """An API key seen as an OAuth2 client; its secret was checked when it was loaded."""

    def __init__(self, key: ApiKey, secret: str) -> None:
        self.key = key
        self._secret = secret

    def get_client_id(self) -> str:
        return client_id_of(self.key)

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(client_secret == self._secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_grant_type(self, grant_type: str) -> bool:
        return bool(grant_type == grants.ClientCredentialsGrant.GRANT_TYPE)

    def get_allowed_scope(self, scope: str | None) -> str:
        held = list(self.key.scopes)
        if not scope:
            return " ".join(held)
        return " ".join(s for s in scope_to_list(scope) if s in held)


class _Grant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

    def validate_requested_scope(self) -> None:
        scope = self.request.payload.scope
        client: _Client = self.request.client
        if scope and not set(scope_to_list(scope)) <= set(client.key.scopes):
            from authlib.oauth2.rfc6749.errors import InvalidScopeError

            raise InvalidScopeError("the key does not hold every scope asked for")


class _FormRequest(OAuth2Request):  # type: ignore[misc]
    """authlib's request over an already-parsed form (it reads both `form` and `payload`)."""

    def __init__(self, form: dict[str, str], headers: Any) -> None:
        # Behind the TLS-terminating ingress every request looks like plain HTTP to us.
        super().__init__("POST", "https://api/oauth/token", headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _Server(AuthorizationServer):  # type: ignore[misc]
    """One token request: the client is loaded beforehand, the token is ours."""

    def __init__(self, auth: Auth, client: _Client | None) -> None:
        super().__init__()
        self._auth = auth
        self._client = client
        self.register_grant(_Grant)
        self.register_token_generator("default", self._token)

    def query_client(self, client_id: str) -> _Client | None:
        if self._client is not None and self._client.get_client_id() == client_id:
            return self._client
        return None

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request  # built by token_endpoint from the starlette request

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing to store: our access tokens are self-contained and short-lived."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals."""

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        return JSONResponse(body, status_code=status, headers=dict(headers))

    def _token(self, *, client: _Client, scope: str | None, **_: Any) -> dict[str, Any]:
        granted = frozenset(scope_to_list(scope) if scope else client.key.scopes)
        token = self._auth.issue(
            str(client.key.owner_id), role=Role.USER, scopes=granted, key_id=str(client.key.id)
        )
        return {
            "token_type": "Bearer",
            "access_token": token,
            "expires_in": self._auth.ttl_seconds,
            "scope": " ".join(sorted(granted)),
        }


def _credentials(request: Request, form: dict[str, str]) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if refusal(client_id) or refusal(secret):
            return None  # no client has such a name: invalid_client, with nothing looked up
        return client_id, secret
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    return None


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


async def token_endpoint(request: Request) -> Response:
    """Exchange an API key's client credentials for a short-lived, scoped access token.

    Requests are limited per client address (`token_endpoint_per_minute`), and wrong client
    secrets lock the client id at that address as wrong passwords lock an account
    (resolvers.access.throttle): both answer 429 with `Retry-After`, and neither writes to the
    audit log except once when a lock begins."""
    core: Core = request.app.state.core
    address = client_address(request)
    per_minute = core.settings.token_endpoint_per_minute
    try:
        await RateLimiter(core.redis, per_minute=per_minute).hit(f"oauth:{address or 'unknown'}")
    except RateLimited as exc:
        return _too_many(exc)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _oauth_error(413, "invalid_request", "the request body is too large")
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return _oauth_error(400, "invalid_request", "send application/x-www-form-urlencoded")
    try:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=10))
    except (UnicodeDecodeError, ValueError):
        return _oauth_error(400, "invalid_request", "the form is not valid")
    for name, value in form.items():
        reason = refusal(name) or refusal(value)
        if reason is not None:  # checked once here, as GraphQL strings are (schema.strings)
            return _oauth_error(400, "invalid_request", f"form field {name[:40]!r}: {reason}")
    try:
        client = await _client(core, _credentials(request, form), address)
    except Locked as exc:
        if exc.began is not None:
            await audit.record(
                None, "oauthToken", outcome=exc.code, detail=exc.began, client=address
            )
        return _too_many(exc)
    except ServiceUnavailable:
        return _oauth_error(503, "temporarily_unavailable", "try again later")
    oauth_request = _FormRequest(form, request.headers)
    response: Response = _Server(core.auth, client).create_token_response(oauth_request)
    outcome = "OK" if response.status_code == 200 else _error_of(response)
    actor = None
    if client is not None:
        actor = Principal(user_id=str(client.key.owner_id), expires_at=0, key_id=str(client.key.id))
    await audit.record(
        actor,
        "oauthToken",
        outcome=outcome,
        object_ids=[str(client.key.id)] if client else [],
        client=address,
    )
    return response


async def _client(
    core: Core, credentials: tuple[str, str] | None, address: str | None
) -> _Client | None:
    """The client these credentials name, or None (authlib then answers invalid_client);
    every wrong or missing secret counts against the client id at this address."""
    client_id = credentials[0] if credentials is not None else ""
    try:
        async with signin_throttle(core).attempt(client_of(client_id), address):
            if credentials is None:
                raise NotAuthenticated("no client credentials")
            return _Client(await find_key(credentials[1], client_id=client_id), credentials[1])
    except NotAuthenticated:
        return None


def _too_many(exc: RateLimited) -> JSONResponse:
    return JSONResponse(
        {"error": "slow_down", "error_description": exc.message},
        status_code=429,
        headers={"Retry-After": str(exc.retry_after), "Cache-Control": "no-store"},
    )


def _error_of(response: Response) -> str:
    try:
        return str(json.loads(bytes(response.body)).get("error", "error")).upper()
    except (ValueError, AttributeError):
        return "ERROR"
