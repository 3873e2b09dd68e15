"""The creation type, its usage and the paginated list of creations."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, cast

import strawberry
from strawberry.scalars import JSON

from resolvers import creation as use_cases
from resolvers.core import models
from resolvers.core.errors import CreationKingError
from resolvers.creation import Page
from schema.context import Info
from schema.tool_inputs import api_path, sent_input
from schema.tool_results import ToolDetails, details_of
from schema.types.errors import (
    AlreadyFinishedError,
    AuthError,
    ErrorType,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    from_exception,
)
from schema.types.user import User

# The union is built from the tool registry at import: a value to strawberry, Any to mypy.
if TYPE_CHECKING:
    Details: TypeAlias = Any
else:
    Details = ToolDetails


@strawberry.enum(description="Lifecycle of a creation.")
class CreationStatus(Enum):
    QUEUED = strawberry.enum_value("QUEUED", description="Stored, waiting for a runner.")
    RUNNING = strawberry.enum_value("RUNNING", description="The model is generating.")
    CANCELLING = strawberry.enum_value(
        "CANCELLING",
        description="Running, and a cancel was asked that its producer has not obeyed yet "
        "(it does within seconds): it then ends CANCELLED, or with the ending it had reached "
        "first. Seen only when the producer is slow to answer the cancel.",
    )
    COMPLETED = strawberry.enum_value("COMPLETED", description="Finished; output is final.")
    FAILED = strawberry.enum_value("FAILED", description="Ended with an error; see errorCode.")
    CANCELLED = strawberry.enum_value("CANCELLED", description="Stopped on request.")


@strawberry.type(description="Tokens spent by a creation (model tokens, not characters).")
class Usage:
    prompt_tokens: int = strawberry.field(description="Tokens sent to the model.")
    completion_tokens: int = strawberry.field(description="Tokens the model generated.")


@strawberry.type(
    description="A piece of personal data masked before the model saw the input: the model "
    "got the placeholder, and the owner's output has the value back. The value itself is "
    "never recorded."
)
class MaskedValue:
    field: str = strawberry.field(
        description="Input field, as the API names it (`prompt`; `facts.2` in lists)."
    )
    kind: str = strawberry.field(description="EMAIL, PHONE, CN_ID, BANK_CARD, IP or PERSON.")
    placeholder: str = strawberry.field(description="What the model saw, e.g. `[EMAIL_1]`.")
    count: int = strawberry.field(description="How often it occurs in the field.")


@strawberry.type(description="One run of a creation tool.")
class Creation:
    id: strawberry.ID = strawberry.field(description="Stable creation id (UUID).")
    tool: str = strawberry.field(description="Name of the tool, as listed by Query.tools.")
    result: JSON | None = strawberry.field(
        description="The structured result as plain JSON (snake_case keys), once finished; "
        "null for tools that make none.",
        deprecation_reason="Use `details`: the same data, typed per tool.",
    )
    model: str = strawberry.field(
        description="Backend that generated it: `local` for the small real models of embedded "
        "mode (SmolLM2-135M-Instruct for text, Whisper tiny.en for speech), `triton` or "
        "`openai` for served models, `dev-engine` for the built-in deterministic stand-in "
        "(no model: placeholder text)."
    )
    model_name: str = strawberry.field(
        description="The model on that backend: `smollm2-135m-instruct-q4_1` or "
        "`whisper-tiny.en` (local), the Triton or OpenAI-compatible model name, `dev-engine` "
        "for the stand-in. A fallback that took over is recorded. Empty for creations stored "
        "before this field existed."
    )
    error_code: str | None = strawberry.field(description="Why it failed, when FAILED.")
    error_message: str | None = strawberry.field(description="Failure details for humans.")
    created_at: datetime = strawberry.field(description="When it was requested (UTC).")
    finished_at: datetime | None = strawberry.field(description="When it ended (UTC).")
    cached: bool = strawberry.field(
        description="True when this creation copies the answer of an identical request "
        "(from the cache, or shared while it ran); its usage then counts no model tokens."
    )
    masked: list[MaskedValue] = strawberry.field(
        description="Personal data masked in the input before any model saw it."
    )
    owner_id: strawberry.Private[str]
    stored_status: strawberry.Private[CreationStatus]
    stored_input: strawberry.Private[dict[str, Any]]
    stored_usage: strawberry.Private[Usage]  # final once ended; 0 before
    inline_output: strawberry.Private[str]
    output_key: strawberry.Private[str | None]

    @strawberry.field(
        description="Where the creation is now (CANCELLING from a cancel until its producer stops)."
    )
    async def status(self, info: Info) -> CreationStatus:
        if self.stored_status is CreationStatus.RUNNING and await use_cases.cancel_pending(
            self.id, feed=info.context.core.feed
        ):
            return CreationStatus.CANCELLING
        return self.stored_status

    @strawberry.field(
        description="The input as sent, in this API's names: the fields of the tool's input "
        "type (`WriteInput` for write...) with camelCase keys, enum values by their names "
        "(`STORY`), defaults filled in. A saved template or spread named by id "
        "(templateId, spreadId) appears filled in; nothing else the server derived is "
        "included."
    )
    def input(self, info: Info) -> JSON:
        return cast(JSON, sent_input(info.schema, self.tool, self.stored_input))

    @strawberry.field(
        description="Tokens spent so far. While running: the tokens of the text streamed so "
        "far and of the prompts behind it (a usage correction the model reports at the end "
        "is not included yet). Final once ended. 0 while queued, and for a cached copy."
    )
    async def usage(self, info: Info) -> Usage:
        if self.stored_status is not CreationStatus.RUNNING:
            return self.stored_usage
        spent = await use_cases.usage_so_far(self.id, feed=info.context.core.feed)
        return Usage(prompt_tokens=spent.prompt_tokens, completion_tokens=spent.completion_tokens)

    @strawberry.field(
        description="The generated text: complete once COMPLETED, the part made so far when "
        "CANCELLED or FAILED. While running: the part saved so far, about a second behind the "
        "stream (stream it with Subscription.creationEvents). Long outputs are read from "
        "object storage."
    )
    async def output(self, info: Info) -> str:
        return await info.context.core.outputs.read(self.inline_output, self.output_key)

    @strawberry.field(
        description="The structured result, typed per tool (SWOT quadrants, a Tarot spread, "
        "video scenes, a formatted social post, extracted code...), once finished; null for "
        "write and report, and while running."
    )
    def details(self) -> Details | None:
        return details_of(self.tool, cast(dict[str, Any] | None, self.result))

    @strawberry.field(description="Who asked for it.")
    async def owner(self, info: Info) -> User:
        row = await info.context.loaders.user_by_id.load(self.owner_id)
        if row is None:
            raise LookupError(f"owner {self.owner_id} of creation {self.id} is missing")
        return User.from_model(row)

    @classmethod
    def from_model(cls, row: models.Creation) -> Creation:
        return cls(
            id=strawberry.ID(str(row.id)),
            tool=row.tool,
            stored_status=CreationStatus(row.status.value),
            stored_input=row.input,
            inline_output=row.output,
            output_key=row.output_key,
            result=cast(JSON, row.result),
            model=row.model,
            model_name=row.model_name,
            stored_usage=Usage(
                prompt_tokens=row.prompt_tokens, completion_tokens=row.completion_tokens
            ),
            error_code=row.error_code,
            error_message=row.error_message,
            created_at=row.created_at,
            finished_at=row.finished_at,
            cached=row.source_id is not None,
            masked=[
                MaskedValue(**{**item, "field": api_path(item["field"])})
                for item in row.masked or []
            ],
            owner_id=str(row.owner_id),
        )


@strawberry.type(description="A creation with its pagination cursor.")
class CreationEdge:
    cursor: str = strawberry.field(description="Pass as `after` to continue after this one.")
    node: Creation = strawberry.field(description="The creation.")


@strawberry.type(description="Relay-style page information.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More creations follow this page.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last edge.")


@strawberry.type(description="A page of the caller's creations, newest first.")
class CreationConnection:
    edges: list[CreationEdge] = strawberry.field(description="The creations of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page ends.")

    @classmethod
    def from_page(cls, page: Page) -> CreationConnection:
        return cls(
            edges=[CreationEdge(cursor=c, node=Creation.from_model(r)) for c, r in page.items],
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
        )


CreationResult = Annotated[
    Creation
    | InvalidInputError
    | AuthError
    | NotFoundError
    | AlreadyFinishedError
    | RateLimitedError
    | UnavailableError,
    strawberry.union("CreationResult", description="The creation, or why the call failed."),
]


async def result_of(call: Awaitable[models.Creation]) -> Creation | ErrorType:
    """The creation a use case returns, or its expected error as a schema type."""
    try:
        return Creation.from_model(await call)
    except CreationKingError as exc:
        return from_exception(exc)
