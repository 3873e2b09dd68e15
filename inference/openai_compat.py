"""Generation through an OpenAI-compatible chat completions API (OpenAI, DeepSeek, ...).

One request is one streamed chat completion with a single user message. The SDK sends it and
turns refusals (4xx/5xx) into its errors; the stream itself is read lean: `httpx-sse` splits
the events and `orjson` decodes them into plain dicts (the SDK builds a pydantic model per
chunk, which cost half the gateway's CPU at 64 streams). The deadlines are those of the SDK's
HTTP client (httpx2), one per network read (`OpenAIConfig.timeout`): no timer per chunk.

We retry ourselves (the SDK's retries are off): 429, 5xx and connection failures are retried
with exponential backoff and jitter, honouring a capped `Retry-After`, but only until the
first token was yielded, since a retry after that would repeat text the caller already has.
`GenerationRequest.parameters` are not sent: they name Triton-side variants (LoRA adapters,
model versions) that providers do not know.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
import orjson
from httpx_sse import EventSource, SSEError

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
    """The `Engine` for models behind an OpenAI-compatible API; one SDK client per engine."""

    name = "openai"

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self._client: openai.AsyncOpenAI | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

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
        try:
            client = self._connection()
            async with asyncio.timeout(timeout):
                await client.models.list(timeout=timeout)
        except (InferenceError, openai.OpenAIError, TimeoutError):
            return False
        return True

    async def aclose(self) -> None:
        """Close the HTTP client; the engine is unusable afterwards."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _generate(
        self, request: GenerationRequest, reported: list[Usage]
    ) -> AsyncGenerator[Delta, None]:
        client = self._connection()
        arguments = _arguments(request)
        attempt = 0
        while True:
            attempt += 1
            yielded = False
            deltas = self._attempt(client, arguments, request.model, reported)
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
        client: openai.AsyncOpenAI,
        arguments: dict[str, Any],
        model: str,
        reported: list[Usage],
    ) -> AsyncGenerator[Delta, None]:
        finished = False
        opening = client.chat.completions.with_streaming_response.create(**arguments)
        try:
            async with opening as response:
                events = EventSource(response.http_response).aiter_sse()
                async for event in events:
                    if event.data == "[DONE]":
                        break
                    chunk = _decode(event.data, model, self.config.api_key)
                    if (usage := chunk.get("usage")) is not None:
                        reported.append(_usage(usage, model))
                    for choice in chunk.get("choices") or ():
                        finished = finished or choice.get("finish_reason") is not None
                        if text := (choice.get("delta") or {}).get("content"):
                            yield Delta(text, 1)
        except (openai.OpenAIError, httpx2.HTTPError, SSEError) as exc:
            raise self._translate(exc, model) from exc
        if not finished:
            # A connection closed cleanly before the finish: the answer is incomplete.
            raise _Retryable(
                ModelUnavailable(f"{model}: the stream ended before the model finished"), None
            )

    def _translate(
        self, exc: openai.OpenAIError | httpx2.HTTPError | SSEError, model: str
    ) -> Exception:
        """Our error (or `_Retryable` wrapping it) for an SDK, HTTP or SSE failure; chain it
        with `from`."""
        if isinstance(exc, httpx2.TimeoutException | openai.APITimeoutError):
            return InferenceTimeout(f"{model}: no answer within {self.config.timeout} s")
        if isinstance(exc, openai.APIConnectionError):
            return _Retryable(ModelUnavailable(f"{model}: cannot reach the provider"), None)
        if isinstance(exc, httpx2.TransportError):
            failure = f"{model}: the connection to the provider broke ({type(exc).__name__})"
            return _Retryable(ModelUnavailable(failure), None)
        if isinstance(exc, httpx2.HTTPError | SSEError):
            return ModelUnavailable(f"{model}: the stream broke: {type(exc).__name__}")
        if not isinstance(exc, openai.APIStatusError):
            return ModelUnavailable(f"{model}: {self._summary(exc)}")
        status = exc.status_code
        if status in (401, 403):
            return ModelUnavailable("provider refused the credentials")
        summary = f"{model}: HTTP {status}: {self._summary(exc)}"
        if status in _RETRYABLE_STATUS or status >= 500:
            return _Retryable(ModelUnavailable(summary), _retry_after(exc.response.headers))
        return BadInput(summary)

    def _summary(self, exc: openai.OpenAIError) -> str:
        body = getattr(exc, "body", None)
        message = body.get("message") if isinstance(body, dict) else None
        text = " ".join(str(message or getattr(exc, "message", exc)).split())[:_SUMMARY_CHARS]
        return _redacted(text, self.config.api_key)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.config.max_backoff)
        ceiling = min(self.config.backoff * 2.0 ** (attempt - 1), self.config.max_backoff)
        # Half fixed, half random: spread clients that failed together, never retry at once.
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _connection(self) -> openai.AsyncOpenAI:
        if self._closed:
            raise ModelUnavailable("the OpenAI engine is closed")
        loop = asyncio.get_running_loop()
        if self._client is None:
            # The SDK's httpx pool belongs to the loop that opened it, hence lazily, in the loop.
            self._client = openai.AsyncOpenAI(
                api_key=self.config.api_key,
                base_url=self.config.base_url,
                organization=self.config.organization,
                timeout=self.config.timeout,
                max_retries=0,
            )
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError("OpenAIEngine is bound to another event loop")
        return self._client


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


def _decode(data: str, model: str, secret: str) -> dict[str, Any]:
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


def _retry_after(headers: Any) -> float | None:
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
