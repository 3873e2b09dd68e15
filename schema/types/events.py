"""Creation events as the subscriptions stream them."""

from __future__ import annotations

from typing import Any

import strawberry

from resolvers.streaming.events import Event, EventKind
from schema.context import Info
from schema.types.creation import Creation, Usage


@strawberry.interface(
    description="One entry of a creation's event log. Every stream ends with exactly one "
    "terminal event: CreationCompleted, CreationFailed or CreationCancelled."
)
class CreationEvent:
    id: strawberry.ID = strawberry.field(
        description="Stable identity of this event, so normalised caches (Apollo, urql) can "
        "key it: `<creationId>:<seq>`, or `<creationId>:<firstSeq>-<seq>` for a TokenDelta "
        "merging several log entries. The same id always names the same log entries; unique "
        "among all creations' events."
    )
    creation_id: strawberry.ID = strawberry.field(description="The creation this belongs to.")
    seq: int = strawberry.field(
        description="Position in the creation's log (1, 2, 3...). Resume with "
        "`creationEvents(id, after: seq)` to get exactly what follows."
    )


@strawberry.type(description="The model started working on the creation (seq 1).")
class CreationStarted(CreationEvent):
    model: str = strawberry.field(
        description="Backend generating it (`local`, `triton`, `openai`, or `dev-engine`: a "
        "stand-in with no model)."
    )


@strawberry.type(
    description="Generated text to append. Tokens are batched (about every 40 ms); a reader "
    "catching up may get several log entries merged, from firstSeq to seq."
)
class TokenDelta(CreationEvent):
    text: str = strawberry.field(description="Text to append to what came before.")
    first_seq: int = strawberry.field(description="First log entry merged here (= seq if one).")


@strawberry.type(description="Progress of a multi-step creation (a report's sections).")
class Progress(CreationEvent):
    fraction: float = strawberry.field(description="Done so far, 0.0 to 1.0.")
    stage: str = strawberry.field(description="What is being worked on now.")


async def _ended(root: CreationEvent, info: Info) -> Creation:
    # The producer saves the row before it writes the terminal event: this is its ending.
    row = await info.context.loaders.creation_by_id.load(str(root.creation_id))
    if row is None:
        raise LookupError(f"creation {root.creation_id} vanished")
    return Creation.from_model(row)


@strawberry.type(description="Terminal: the creation finished; its output is final.")
class CreationCompleted(CreationEvent):
    usage: Usage = strawberry.field(description="Tokens spent in total.")
    creation: Creation = strawberry.field(
        resolver=_ended,
        description="The finished creation (status COMPLETED, final usage, output and "
        "details), to update a cached copy without a refetch.",
    )


@strawberry.type(description="Terminal: the creation failed.")
class CreationFailed(CreationEvent):
    code: str = strawberry.field(
        description="MODEL_UNAVAILABLE, INFERENCE_TIMEOUT, BAD_INPUT, UNSUPPORTED_LANGUAGE "
        "(transcribe: the speech model does not know the language asked for), INTERRUPTED "
        "(the producer stopped, or the event log stayed unreachable) or INTERNAL."
    )
    message: str = strawberry.field(description="Details for humans.")
    usage: Usage = strawberry.field(description="Tokens spent before the failure.")
    creation: Creation = strawberry.field(
        resolver=_ended,
        description="The failed creation (status FAILED, errorCode, the usage and the output "
        "made before the failure), to update a cached copy without a refetch.",
    )


@strawberry.type(description="Terminal: the creation was cancelled on request.")
class CreationCancelled(CreationEvent):
    usage: Usage = strawberry.field(description="Tokens spent until the model stopped.")
    creation: Creation = strawberry.field(
        resolver=_ended,
        description="The cancelled creation (status CANCELLED, the usage and the output made "
        "until the model stopped), to update a cached copy without a refetch.",
    )


EVENT_TYPES = (
    CreationStarted,
    TokenDelta,
    Progress,
    CreationCompleted,
    CreationFailed,
    CreationCancelled,
)


def from_event(event: Event) -> CreationEvent:
    """The schema type of a log entry."""
    seq, first = event.seq, event.first_seq or event.seq
    span = str(seq) if first == seq else f"{first}-{seq}"
    common: dict[str, Any] = {
        "id": strawberry.ID(f"{event.creation_id}:{span}"),
        "creation_id": strawberry.ID(event.creation_id),
        "seq": seq,
    }
    usage = Usage(prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens)
    match event.kind:
        case EventKind.STARTED:
            return CreationStarted(**common, model=event.model)
        case EventKind.DELTA:
            return TokenDelta(**common, text=event.text, first_seq=first)
        case EventKind.PROGRESS:
            return Progress(**common, fraction=event.fraction, stage=event.stage)
        case EventKind.COMPLETED:
            return CreationCompleted(**common, usage=usage)
        case EventKind.FAILED:
            return CreationFailed(**common, code=event.code, message=event.message, usage=usage)
        case EventKind.CANCELLED:
            return CreationCancelled(**common, usage=usage)
