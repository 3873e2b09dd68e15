"""Model routing: which backend and model serve each tool, A/B variants, and fallbacks.

`CK_ROUTES` maps a tool to variants, e.g.
`{"write": [{"name": "llama", "backend": "triton", "model": "llama3-70b", "weight": 9},
            {"name": "mixtral", "backend": "triton", "model": "mixtral", "weight": 1},
            {"name": "backup", "backend": "dev", "model": "dev", "fallback": true}]}`.
A creation draws one weighted variant when it is stored (and keeps it on retries); a fallback
variant serves it when the chosen backend fails before its first token. Tools without a route
use the process's default backend and the tool's model setting.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from inference.base import (
    Completion,
    Delta,
    Engine,
    GenerationRequest,
    InferenceTimeout,
    ModelUnavailable,
    collect,
)
from inference.dev import NAME as DEV_ENGINE

Backend = Literal["dev", "triton", "openai", "local"]


class Variant(BaseModel):
    """One way to serve a tool: a backend, a model on it, and how often to use it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=40)
    backend: Backend
    model: str = Field(min_length=1, max_length=200)
    version: str | None = Field(None, max_length=20, description="Triton model version")
    adapter: str | None = Field(None, max_length=100, description="LoRA adapter name")
    weight: float = Field(1.0, ge=0)
    fallback: bool = False

    @property
    def model_name(self) -> str:
        """The model a creation records: the dev backend runs none, whatever it is asked."""
        return DEV_ENGINE if self.backend == "dev" else self.model


class RoutedEngine:
    """A variant's engine: sets its model, version and adapter on every request, and moves
    to the fallback variant when the backend fails before the first token."""

    def __init__(
        self, variant: Variant, engine: Engine, fallback: tuple[Variant, Engine] | None
    ) -> None:
        self.variant = variant
        self._engine = engine
        self._fallback = fallback
        self.name = engine.name
        self.served_by = variant  # the fallback once it took over

    def _for(self, variant: Variant, request: GenerationRequest) -> GenerationRequest:
        # The tool already asked for the variant's model (and may have refined it, e.g. one
        # OPUS-MT model per language pair); only a fallback switches to another model.
        parameters = dict(request.parameters)
        if variant.version:
            parameters.setdefault("model_version", variant.version)
        if variant.adapter:
            parameters.setdefault("lora_adapter", variant.adapter)
        model = request.model if variant is self.variant else variant.model
        return dataclasses.replace(request, model=model, parameters=parameters)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """The chosen variant's stream, or the fallback's if it fails before any text."""
        started = False
        try:
            async for delta in self._engine.stream(self._for(self.variant, request)):
                started = True
                yield delta
            return
        except (ModelUnavailable, InferenceTimeout):
            if started or self._fallback is None:
                raise
        variant, engine = self._fallback
        self.served_by, self.name = variant, engine.name
        async for delta in engine.stream(self._for(variant, request)):
            yield delta

    async def complete(self, request: GenerationRequest) -> Completion:
        return await collect(self, request)

    @property
    def fell_back(self) -> bool:
        """True once the fallback variant took over from the chosen one."""
        return self.served_by is not self.variant

    async def aclose(self) -> None:
        """The underlying engines belong to the process; nothing to close here."""


class Router:
    """Chooses variants and builds their engines from the process's backends."""

    def __init__(
        self,
        routes: Mapping[str, Sequence[Variant]],
        engines: Mapping[str, Engine],
        *,
        defaults: Mapping[str, Variant],
    ) -> None:
        missing = {v.backend for vs in routes.values() for v in vs if v.backend not in engines}
        if missing:
            raise ValueError(f"CK_ROUTES uses backends this process has not configured: {missing}")
        self._routes = {tool: list(variants) for tool, variants in routes.items()}
        self._engines = engines
        self._defaults = defaults
        self._random = random.SystemRandom()

    def variants(self, tool: str) -> list[Variant]:
        """The tool's variants, its default when it has no route."""
        return self._routes.get(tool) or [self._defaults[tool]]

    def choose(self, tool: str) -> Variant:
        """A weighted draw among the tool's non-fallback variants."""
        candidates = [v for v in self.variants(tool) if not v.fallback] or self.variants(tool)
        weights = [v.weight for v in candidates]
        if not any(weights):
            return candidates[0]
        return self._random.choices(candidates, weights=weights)[0]

    def engine(self, tool: str, variant_name: str | None) -> RoutedEngine:
        """The engine of a creation's variant (the first one if its name is unknown now)."""
        variants = self.variants(tool)
        variant = next((v for v in variants if v.name == variant_name), variants[0])
        fallback = next((v for v in variants if v.fallback and v is not variant), None)
        return RoutedEngine(
            variant,
            self._engines[variant.backend],
            None if fallback is None else (fallback, self._engines[fallback.backend]),
        )
