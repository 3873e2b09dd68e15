"""The dev engine: honest, deterministic text built from the request, no model weights.

Every result it makes is labelled `dev-engine`. The text mixes the prompt's own words with a
fixed vocabulary, seeded by the prompt and the seed, so the same request always streams the
same tokens; `token_delay` paces it like a model would.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import AsyncIterator

from inference.base import Completion, Delta, GenerationRequest, collect

NAME = "dev-engine"
_WORDS = """
light river quiet city morning story window voice paper garden signal stone winter memory
bridge market thread ocean lantern field letter harbor music silver road echo promise
journey forest mirror season secret island machine color spark dream
"""
_VOCABULARY = tuple(_WORDS.split())
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)


class DevEngine:
    """Deterministic streaming text at a configurable pace; labelled `dev-engine`."""

    name = NAME

    def __init__(self, *, token_delay: float = 0.02) -> None:
        self._delay = token_delay

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """Yield `request.max_tokens` word tokens, in sentences, at `token_delay` each."""
        seed = hashlib.sha256(f"{request.seed}|{request.prompt}".encode()).digest()
        rng = random.Random(seed)
        # Prompt words come from the user's part only: instructions would dominate otherwise.
        topic = _WORD.findall(request.prompt.rsplit("\n", 1)[-1])[-12:] or _VOCABULARY[:3]
        sentence_left = rng.randint(6, 14)
        capital = True
        for index in range(request.max_tokens):
            word = rng.choice(topic) if rng.random() < 0.3 else rng.choice(_VOCABULARY)
            text = word.capitalize() if capital else word.lower()
            sentence_left -= 1
            capital = sentence_left == 0 or index == request.max_tokens - 1
            if capital:
                text += "."
                sentence_left = rng.randint(6, 14)
            if self._delay:
                await asyncio.sleep(self._delay)
            elif index % 64 == 63:
                await asyncio.sleep(0)  # stay cancellable and fair when unpaced
            yield Delta(text if index == 0 else " " + text)

    async def complete(self, request: GenerationRequest) -> Completion:
        """The whole text of `stream` at once."""
        return await collect(self, request)

    async def aclose(self) -> None:
        """Nothing to release."""
