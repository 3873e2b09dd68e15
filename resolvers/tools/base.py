"""What a tool is to the application layer: validated input, a run function, fast or long."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from inference.base import Engine, Piece, close_stream
from resolvers.core.errors import InvalidInput
from resolvers.core.settings import Settings
from resolvers.guard.inputs import Masking, mask, restored
from resolvers.storage.objects import ObjectStore

if TYPE_CHECKING:
    from resolvers.access.auth import Principal

MAX_SEED = 2**31 - 1
DEFAULT_BUDGET = 2_048  # tokens reserved for tools whose input sets no maximum


class Mode(StrEnum):
    """FAST tools stream from the API process; LONG ones run on a worker."""

    FAST = "FAST"
    LONG = "LONG"


def check_text(value: str) -> str:
    """Refuse text a database or a model cannot take: NUL characters, lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


class ToolInput(BaseModel):
    """Base of every tool's input: unknown fields refused, text cleaned and checked.

    Every field needs a `description` stating its limits: the schema is generated from it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _clean_text(cls, value: Any) -> Any:
        return check_text(value) if isinstance(value, str) else value


Run = Callable[[Engine, Mapping[str, Any], str, str], AsyncIterator[Piece]]
Check = Callable[[Mapping[str, Any]], object]
Prepare = Callable[[dict[str, Any], "Principal", ObjectStore], Awaitable[dict[str, Any]]]
Load = Callable[[Mapping[str, Any], ObjectStore], Awaitable[Mapping[str, Any]]]
_FIELD_PREFIX = re.compile(r"^(\w+)\s*:")


@dataclass(frozen=True)
class EnumDoc:
    """How an input enum is documented in the schema."""

    description: str
    values: Mapping[Enum, str]
    name: str | None = None  # the GraphQL name, when the Python class name is ambiguous


@dataclass(frozen=True)
class Tool:
    """One creation tool: its GraphQL field name, input model, run function and mode."""

    name: str
    description: str
    mode: Mode
    input_model: type[ToolInput]
    run: Run
    model_setting: str
    enums: Mapping[type[Enum], EnumDoc] = field(default_factory=dict)
    check: Check | None = None  # builds the engine's spec, whose ValueErrors are input errors
    long_when: Callable[[Mapping[str, Any]], bool] | None = None  # FAST tool, LONG request
    prepare: Prepare | None = None  # completes the input with the caller's stored data
    load: Load | None = None  # fetches what the stored input refers to, just before the run
    budget: Callable[[Mapping[str, Any]], int] | None = None  # most tokens a request may use

    def parse(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and normalise raw input; raises InvalidInput naming the first bad field."""
        try:
            parsed = self.input_model.model_validate(dict(payload))
        except ValidationError as exc:
            error = exc.errors()[0]
            name = ".".join(str(part) for part in error["loc"]) or None
            message = error["msg"].removeprefix("Value error, ")
            raise InvalidInput(f"{name}: {message}" if name else message, field=name) from exc
        data = parsed.model_dump(mode="json")
        self.validate(data)
        return data

    def validate(self, data: Mapping[str, Any]) -> None:
        """Let the engine's own spec refuse what the input model let through."""
        if self.check is None:
            return
        try:
            self.check(data)
        except ValueError as exc:
            match = _FIELD_PREFIX.match(str(exc))
            raise InvalidInput(str(exc), field=match.group(1) if match else None) from exc

    def mode_for(self, data: Mapping[str, Any]) -> Mode:
        """Where this request runs: a fast tool sends very large requests to a worker."""
        if self.mode is Mode.FAST and self.long_when is not None and self.long_when(data):
            return Mode.LONG
        return self.mode

    def token_budget(self, data: Mapping[str, Any]) -> int:
        """The most model tokens this request may generate: what the quota reserves."""
        if self.budget is not None:
            return self.budget(data)
        value = data.get("max_tokens")
        return value if isinstance(value, int) and value > 0 else DEFAULT_BUDGET

    async def pieces(
        self,
        engine: Engine,
        data: Mapping[str, Any],
        model: str,
        request_id: str,
        store: ObjectStore,
        *,
        masking: Masking | None = None,
    ) -> AsyncIterator[Piece]:
        """The run's pieces, after loading what the input refers to (e.g. an upload). The
        model sees the input with personal data masked (`masking`: `mask(data)`, if the
        caller made it already); the pieces come back restored."""
        if self.load is not None:
            data = await self.load(data, store)
            masking = None  # what was loaded is masked too
        if masking is None:
            masking = mask(data)
        pieces = self.run(engine, masking.data, model, request_id)
        if len(masking.vault):
            pieces = restored(pieces, masking.vault)
        try:
            async for piece in pieces:
                yield piece
        finally:
            await close_stream(pieces)  # the model stream stops however the run stops

    def model(self, settings: Settings) -> str:
        """The model name this tool asks its backend for."""
        return str(getattr(settings, self.model_setting))
