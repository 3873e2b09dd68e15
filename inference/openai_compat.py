"""Generation through an OpenAI-compatible chat completions API (OpenAI, DeepSeek, ...).

One request is one streamed chat completion with a single user message, sent with aiohttp
(one pooled session per engine) and read lean: `event_data` splits the server-sent events
and `orjson` decodes them into plain dicts. The openai SDK and its HTTP client (httpx2) took
5.2 ms of CPU per request here against aiohttp's 0.65 ms (`bench/README.md`), more than all
of our own start path; refusals (4xx/5xx) are mapped here from the status and the body's
`error.message`, as the SDK did. The deadline is one per network read (`OpenAIConfig.timeout`,
aiohttp's `sock_read`): no timer per chunk.

We retry ourselves: 429, 5xx and connection failures are retried with exponential backoff and
jitter, honouring a capped `Retry-After`, but only until the first token was yielded, since a
retry after that would repeat text the caller already has. `GenerationRequest.parameters` are
not sent: they name Triton-side variants (LoRA adapters, model versions) that providers do not
know.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from inference.base import (
    BadInput,
    Completion,
    Delta,
    GenerationRequest,
    InferenceError,
    InferenceTimeout,
    ModelUnavailable,
    Usage,
    count_tokens,
)

MAX_RETRIES_LIMIT = 10
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_READY_TIMEOUT = 5.0
_SUMMARY_CHARS = 300
_ERROR_BODY_BYTES = 64 * 1024
_MAX_CONNECTIONS = 1_000  # streams at once to one provider, per engine


@dataclass(frozen=True)
class OpenAIConfig:
    """Where the provider listens and how patiently we call it; times are in seconds.

    `timeout` bounds connecting, the wait for the response headers and each read of the
    stream (a provider silent that long has stalled); `max_backoff` caps both our backoff and
    the provider's `Retry-After`.
    """

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = 60.0
    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 20.0
    organization: str | None = None

    def __post_init__(self) -> None:
        for name in ("timeout", "max_backoff"):
            if not getattr(self, name) > 0:
                raise ValueError(f"OpenAIConfig.{name} must be positive")
        if not self.backoff >= 0:
            raise ValueError("OpenAIConfig.backoff must be >= 0")
        if not 0 <= self.max_retries <= MAX_RETRIES_LIMIT:
            raise ValueError(f"OpenAIConfig.max_retries must be between 0 and {MAX_RETRIES_LIMIT}")


class _Retryable(Exception):
    """An attempt failed in a way a new attempt may fix; `error` is what to raise otherwise."""

    def __init__(self, error: InferenceError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class OpenAIEngine:
    """The `Engine` for models behind an OpenAI-compatible API; one HTTP session per engine."""

    name = "openai"

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        self._headers = {
            "Authorization": f"Bearer {config.api_key}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
        }
        if config.organization:
            self._headers["OpenAI-Organization"] = config.organization
        self._proxy = env_proxy(self._url)

    def __repr__(self) -> str:
        return f"OpenAIEngine({self.config!r})"

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """Yield the model's text as it comes, then a correction to the provider's usage when
        its last chunk reports it; closing the iterator closes the HTTP response."""
        reported: list[Usage] = []
        tokens = 0
        async with aclosing(self._generate(request, reported)) as deltas:
            async for delta in deltas:
                tokens += delta.tokens
                yield delta
        if reported:
            exact = reported[-1]
            yield Delta(
                "",
                tokens=exact.completion_tokens - tokens,
                prompt_tokens=exact.prompt_tokens - count_tokens(request.prompt),
            )

    async def complete(self, request: GenerationRequest) -> Completion:
        """Generate the whole text; usage is the provider's when its last chunk reports it."""
        reported: list[Usage] = []
        parts: list[str] = []
        tokens = 0
        async with aclosing(self._generate(request, reported)) as deltas:
            async for delta in deltas:
                parts.append(delta.text)
                tokens += delta.tokens
        usage = reported[-1] if reported else Usage(count_tokens(request.prompt), tokens)
        return Completion(text="".join(parts), usage=usage, model=request.model)

    async def ready(self) -> bool:
        """True when the provider lists its models within a few seconds; never raises."""
        timeout = min(_READY_TIMEOUT, self.config.timeout)
        url = self.config.base_url.rstrip("/") + "/models"
        try:
            session = self._connection()
            async with asyncio.timeout(timeout):
                get = session.get(url, headers=self._headers, proxy=self._proxy)
                async with get as response:
                    return response.status == 200
        except (InferenceError, aiohttp.ClientError, TimeoutError):
            return False

    async def aclose(self) -> None:
        """Close the HTTP session; the engine is unusable afterwards."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _generate(
        self, request: GenerationRequest, reported: list[Usage]
    ) -> AsyncGenerator[Delta, None]:
        session = self._connection()
        body = orjson.dumps(_arguments(request))
        attempt = 0
        while True:
            attempt += 1
            yielded = False
            deltas = self._attempt(session, body, request.model, reported)
            try:
                async with aclosing(deltas):
                    async for delta in deltas:
                        yielded = True
                        yield delta
                return
            except _Retryable as failure:
                if yielded or attempt > self.config.max_retries:
                    raise failure.error from failure.__cause__
                delay = self._delay(attempt, failure.retry_after)
            await asyncio.sleep(delay)

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        body: bytes,
        model: str,
        reported: list[Usage],
    ) -> AsyncGenerator[Delta, None]:
        finished = False
        try:
            post = session.post(self._url, data=body, headers=self._headers, proxy=self._proxy)
            async with post as response:
                if response.status >= 400:
                    body = await _error_body(response)
                    raise self._refusal(response.status, body, response.headers, model)
                async for data in event_data(response.content):
                    if data == b"[DONE]":
                        break
                    chunk = _decode(data, model, self.config.api_key)
                    if (usage := chunk.get("usage")) is not None:
                        reported.append(_usage(usage, model))
                    for choice in chunk.get("choices") or ():
                        finished = finished or choice.get("finish_reason") is not None
                        if text := (choice.get("delta") or {}).get("content"):
                            yield Delta(text, 1)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise self._translate(exc, model) from exc
        if not finished:
            # A connection closed cleanly before the finish: the answer is incomplete.
            raise _Retryable(
                ModelUnavailable(f"{model}: the stream ended before the model finished"), None
            )

    def _translate(self, exc: Exception, model: str) -> Exception:
        """Our error (or `_Retryable` wrapping it) for a network or protocol failure; chain it
        with `from`."""
        if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts included
            return InferenceTimeout(f"{model}: no answer within {self.config.timeout} s")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return _Retryable(ModelUnavailable(f"{model}: cannot reach the provider"), None)
        if isinstance(
            exc,
            aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | aiohttp.ClientPayloadError,
        ):
            failure = f"{model}: the connection to the provider broke ({type(exc).__name__})"
            return _Retryable(ModelUnavailable(failure), None)
        if isinstance(exc, ValueError):  # aiohttp's "Chunk too big": a line over 128 KiB
            return ModelUnavailable(f"{model}: the provider sent a malformed chunk")
        return ModelUnavailable(f"{model}: the stream broke: {type(exc).__name__}")

    def _refusal(
        self, status: int, body: bytes, headers: Mapping[str, str], model: str
    ) -> InferenceError | _Retryable:
        """Our error for an HTTP refusal, with the provider's message (never the key)."""
        if status in (401, 403):
            return ModelUnavailable("provider refused the credentials")
        summary = f"{model}: HTTP {status}: {self._summary(body, status)}"
        if status in _RETRYABLE_STATUS or status >= 500:
            return _Retryable(ModelUnavailable(summary), _retry_after(headers))
        return BadInput(summary)

    def _summary(self, body: bytes, status: int) -> str:
        """The provider's `error.message` (or its text), on one line and capped."""
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        error = parsed.get("error") if isinstance(parsed, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        if message is None:
            message = body.decode("utf-8", "replace") or f"status {status}"
        text = " ".join(str(message).split())[:_SUMMARY_CHARS]
        return _redacted(text, self.config.api_key)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.config.max_backoff)
        ceiling = min(self.config.backoff * 2.0 ** (attempt - 1), self.config.max_backoff)
        # Half fixed, half random: spread clients that failed together, never retry at once.
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _connection(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ModelUnavailable("the OpenAI engine is closed")
        loop = asyncio.get_running_loop()
        if self._session is None:
            # The session's pool belongs to the loop that opened it, hence lazily, in the loop.
            timeout = self.config.timeout
            self._session = aiohttp.ClientSession(
                # One deadline per read (headers included) and for connecting, none in all:
                # a long answer may stream for minutes.
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
                ),
                # As many connections as streams (aiohttp's default caps them at 100).
                connector=aiohttp.TCPConnector(limit=_MAX_CONNECTIONS),
                # The proxy comes from `env_proxy`, read once: aiohttp's `trust_env` reads the
                # environment and ~/.netrc in a thread on every request (1.3 ms of CPU each).
                trust_env=False,
            )
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError("OpenAIEngine is bound to another event loop")
        return self._session


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (`HTTPS_PROXY` or `HTTP_PROXY` by its scheme,
    none when `NO_PROXY` covers its host), as the SDK's client honoured them."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return proxies.get(parts.scheme)


async def event_data(lines: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The `data` of each server-sent event in a stream of lines (the WHATWG event-stream
    format: `data:` lines joined with newlines, dispatched by a blank line; comments and the
    other fields are skipped, and an event the stream ends before dispatching is dropped).
    Lines end in LF or CRLF; a lone CR is not taken as a line end."""
    data: list[bytes] = []
    async for raw in lines:
        line = raw.rstrip(b"\n").removesuffix(b"\r")
        if not line:
            if data:
                yield b"\n".join(data)
                data = []
            continue
        name, _, value = line.partition(b":")
        if name == b"data":
            data.append(value[1:] if value[:1] == b" " else value)


async def _error_body(response: aiohttp.ClientResponse) -> bytes:
    """The start of a refusal's body: enough for its message, never a provider's megabytes."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < _ERROR_BODY_BYTES:
            chunk = await response.content.read(_ERROR_BODY_BYTES - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (aiohttp.ClientError, TimeoutError):
        pass  # what arrived is enough for a message
    return b"".join(chunks)


def _arguments(request: GenerationRequest) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": "user", "content": request.prompt}],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.seed is not None:
        arguments["seed"] = request.seed
    return arguments


def _decode(data: bytes, model: str, secret: str) -> dict[str, Any]:
    """One chunk of the stream; a provider's mid-stream error event becomes ours."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ModelUnavailable(f"{model}: the provider sent a malformed chunk") from exc
    if not isinstance(chunk, dict):
        raise ModelUnavailable(f"{model}: the provider sent a malformed chunk")
    if (error := chunk.get("error")) is not None:
        message = error.get("message") if isinstance(error, dict) else error
        summary = _redacted(" ".join(str(message).split())[:_SUMMARY_CHARS], secret)
        raise ModelUnavailable(f"{model}: the provider failed mid-stream: {summary}")
    return chunk


def _redacted(text: str, secret: str) -> str:
    """Some providers echo (part of) the key they refused; never pass it on."""
    return text.replace(secret, "***") if secret else text


def _usage(usage: Any, model: str) -> Usage:
    try:
        return Usage(int(usage["prompt_tokens"]), int(usage["completion_tokens"]))
    except (TypeError, KeyError, ValueError) as exc:
        raise ModelUnavailable(f"{model}: the provider sent malformed usage") from exc


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asks us to wait (`retry-after-ms`, `Retry-After` seconds or date)."""
    try:
        milliseconds = headers.get("retry-after-ms")
        if milliseconds is not None:
            return max(0.0, float(milliseconds) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            moment = email.utils.parsedate_to_datetime(value)
            return max(0.0, moment.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None
