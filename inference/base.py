"""The one protocol every generation backend implements, and its messages.

Errors raised by any backend::

    InferenceError
     ├── ModelUnavailable   the model or server cannot be reached or is not loaded
     ├── InferenceTimeout   no token (or no answer) within the configured time
     └── BadInput           the request was refused by the model as malformed
          └── UnsupportedLanguage   the model does not know the requested language
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# A rough word-piece count: words, numbers and each punctuation mark or CJK character count
# once. Backends that know their tokenizer report real numbers instead.
_TOKEN = re.compile(r"[A-Za-z]+|\d+|[\u3400-\u9fff]|[^\sA-Za-z\d]")


def count_tokens(text: str) -> int:
    """Approximate token count used where the model reports none (dev engine, prompts)."""
    return len(_TOKEN.findall(text))


class InferenceError(Exception):
    """Base of every error a backend raises; `code` is stable and shown to clients."""

    code = "INFERENCE_ERROR"


class ModelUnavailable(InferenceError):
    """The model server is unreachable, the model is not loaded or the stream broke."""

    code = "MODEL_UNAVAILABLE"


class InferenceTimeout(InferenceError):
    """The model produced nothing within the configured timeout."""

    code = "INFERENCE_TIMEOUT"


class BadInput(InferenceError):
    """The model refused the request as malformed."""

    code = "BAD_INPUT"


class UnsupportedLanguage(BadInput):
    """The model does not know the requested language (an English-only speech model)."""

    code = "UNSUPPORTED_LANGUAGE"


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: what to send to the model, never read from the environment."""

    request_id: str
    model: str
    prompt: str
    max_tokens: int = 512
    temperature: float = 0.7
    seed: int | None = None
    parameters: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    stop: tuple[str, ...] = ()  # the text ends before the first of these (engines that can)


@dataclass(frozen=True)
class Usage:
    """Token counts of one generation (or the sum of several)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True)
class Delta:
    """A piece of generated text; `tokens` is how many model tokens it holds.

    Callers estimate prompt tokens with `count_tokens` and sum `tokens` for the completion.
    An engine that learns the exact usage only at the end (a provider's final chunk) yields
    one last empty Delta whose `tokens` and `prompt_tokens` (either may be negative) correct
    both estimates to the provider's figures; tools pass it on like any delta.
    """

    text: str
    tokens: int = 1
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Stage:
    """Progress of a multi-step generation (a report's outline, then each section)."""

    fraction: float
    name: str


@dataclass(frozen=True)
class Structured:
    """A tool's structured result (JSON-ready: str, int, float, bool, None, list, dict),
    yielded once, at the end; stored on the creation beside its text."""

    data: Mapping[str, object]


# Set by whoever iterates a tool's pieces (the runner, per run): an engine that makes a
# request wait for a free model tells it its place in line, 1 being next.
QUEUE_POSITION: ContextVar[Callable[[int], None] | None] = ContextVar(
    "queue_position", default=None
)


def queue_position_reporter() -> Callable[[int], None] | None:
    """Where the current run wants to hear its place in an engine's line, if anywhere."""
    return QUEUE_POSITION.get()


Piece = Delta | Stage | Usage | Structured
"""What a tool's generator yields: text, progress, usage spent outside the text stream, and
at most one structured result."""


@dataclass(frozen=True)
class Completion:
    """A whole generation, as `Engine.complete` returns it."""

    text: str
    usage: Usage
    model: str


@runtime_checkable
class Engine(Protocol):
    """A generation backend: Triton, the dev engine or a test double."""

    name: str

    def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """Yield text deltas as the model makes them; closing the iterator cancels the request."""
        ...

    async def complete(self, request: GenerationRequest) -> Completion:
        """Generate the whole text and return it with its usage."""
        ...

    async def aclose(self) -> None:
        """Release connections; the engine is unusable afterwards."""
        ...


async def collect(engine: Engine, request: GenerationRequest) -> Completion:
    """`complete` built on `stream`, for backends whose only native call is streaming."""
    parts: list[str] = []
    tokens = 0
    async for delta in engine.stream(request):
        parts.append(delta.text)
        tokens += delta.tokens
    return Completion(
        text="".join(parts),
        usage=Usage(count_tokens(request.prompt), tokens),
        model=request.model,
    )


@contextlib.asynccontextmanager
async def relayed(
    engine: Engine, request: GenerationRequest, parts: list[str]
) -> AsyncIterator[AsyncIterator[Delta]]:
    """The engine's deltas, their text kept in `parts`; the model stream is closed however
    the caller stops (a cancelled tool stops the model's request too)."""
    stream = engine.stream(request)

    async def deltas() -> AsyncIterator[Delta]:
        async for delta in stream:
            parts.append(delta.text)
            yield delta

    try:
        yield deltas()
    finally:
        await close_stream(stream)


async def close_stream(stream: object) -> None:
    """Close an async iterator that can be closed (an async generator): its `finally`
    blocks run now, so a model request stops however its consumer stopped."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
