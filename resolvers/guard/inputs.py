"""Personal data masked in a tool's input before the model, and put back in what it makes.

Every text field of the input (strings and lists of strings; not ids or base64 media) is
masked with one numbering; the model sees placeholders such as `[EMAIL_1]`. Its text
deltas and structured result are restored on the way out, so the owner reads their own
values while no model (Triton or a provider's API) ever received them. What was masked is
recorded as field, kind, placeholder and count: never the values.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from inference.base import Delta, Piece, Structured, close_stream
from resolvers.core.errors import Blocked
from resolvers.guard.pii import Vault, anonymise_many
from resolvers.guard.shield import Shield

_NOT_TEXT = ("_id", "_base64")
_INLINE_CHECK_CHARS = 2_000  # longer inputs are screened off the event loop (~5 ms a KB)


@dataclass(frozen=True)
class Masking:
    """A tool input with its personal data masked, and how to put it back."""

    data: dict[str, Any]
    vault: Vault
    found: list[dict[str, Any]]  # field, kind, placeholder, count


def texts_of(data: Mapping[str, Any]) -> dict[str, str]:
    """The text fields of a tool input by path (`facts.2` for list items)."""
    texts: dict[str, str] = {}
    for key, value in data.items():
        if key.startswith("_") or key.endswith(_NOT_TEXT):
            continue
        if isinstance(value, str):
            texts[key] = value
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            texts.update({f"{key}.{index}": item for index, item in enumerate(value)})
    return texts


def mask(data: Mapping[str, Any]) -> Masking:
    """The input with every text field's personal data replaced by placeholders."""
    masked = anonymise_many(texts_of(data))
    result = dict(data)
    for path, text in masked.texts.items():
        key, _, index = path.partition(".")
        if index:
            if result[key] is data[key]:
                result[key] = list(data[key])  # never change the caller's list
            result[key][int(index)] = text
        else:
            result[key] = text
    found = [
        {"field": path, "kind": f.kind.value, "placeholder": f.placeholder, "count": f.count}
        for path, findings in masked.found.items()
        for f in findings
    ]
    return Masking(result, masked.vault, found)


async def restored(pieces: AsyncIterator[Piece], vault: Vault) -> AsyncIterator[Piece]:
    """The pieces with placeholders turned back into the values (text that may be the start
    of a placeholder is held until the next delta shows it is not)."""
    stream = vault.stream()
    try:
        async for piece in pieces:
            if isinstance(piece, Delta):
                yield Delta(stream.feed(piece.text), piece.tokens, piece.prompt_tokens)
            elif isinstance(piece, Structured):
                yield Structured(_restore(piece.data, vault))
            else:
                yield piece
        rest = stream.flush()
        if rest:
            yield Delta(rest, tokens=0)
    finally:
        await close_stream(pieces)


def _restore(value: Any, vault: Vault) -> Any:
    if isinstance(value, str):
        return vault.restore(value)
    if isinstance(value, list):
        return [_restore(item, vault) for item in value]
    if isinstance(value, dict):
        return {key: _restore(item, vault) for key, item in value.items()}
    return value


async def screen(shield: Shield | None, data: Mapping[str, Any]) -> None:
    """Refuse an input the prompt-injection shield blocks (Blocked names the categories and
    the field, never the text)."""
    if shield is None:
        return
    texts = texts_of(data)
    if shield.classifier is None and sum(map(len, texts.values())) > _INLINE_CHECK_CHARS:
        verdict = await asyncio.to_thread(shield.check, texts)  # 50-100 ms for 20,000 chars
    else:
        verdict = await shield.check_async(texts)
    if verdict.blocked:
        field = verdict.fields[0] if verdict.fields else None
        kinds = ", ".join(verdict.categories) or "classifier"
        raise Blocked(f"the input looks like a prompt injection ({kinds})", field=field)
