"""Creation events as the subscriptions stream them."""

from __future__ import annotations

import strawberry

from resolvers.events import Event, EventKind
from schema.context import Info
from schema.types.creation import Creation, Usage


@strawberry.interface(
    description="One entry of a creation's event log. Every stream ends with exactly one "
    "terminal event: CreationCompleted, CreationFailed or CreationCancelled."
)
class CreationEvent:
    creation_id: strawberry.ID = strawberry.field(description="The creation this belongs to.")
    seq: int = strawberry.field(
        description="Position in the creation's log (1, 2, 3...). Resume with "
        "`creationEvents(id, after: seq)` to get exactly what follows."
    )


@strawberry.type(description="The model started working on the creation (seq 1).")
class CreationStarted(CreationEvent):
    model: str = strawberry.field(description="Backend generating it (`dev-engine`, `triton`).")


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


@strawberry.type(description="Terminal: the creation finished; its output is final.")
class CreationCompleted(CreationEvent):
    usage: Usage = strawberry.field(description="Tokens spent in total.")

    @strawberry.field(description="The finished creation.")
    async def creation(self, info: Info) -> Creation:
        row = await info.context.loaders.creation_by_id.load(str(self.creation_id))
        if row is None:
            raise LookupError(f"creation {self.creation_id} vanished")
        return Creation.from_model(row)


@strawberry.type(description="Terminal: the creation failed.")
class CreationFailed(CreationEvent):
    code: str = strawberry.field(
        description="MODEL_UNAVAILABLE, INFERENCE_TIMEOUT, BAD_INPUT, INTERRUPTED (the server "
        "stopped) or INTERNAL."
    )
    message: str = strawberry.field(description="Details for humans.")
    usage: Usage = strawberry.field(description="Tokens spent before the failure.")


@strawberry.type(description="Terminal: the creation was cancelled on request.")
class CreationCancelled(CreationEvent):
    usage: Usage = strawberry.field(description="Tokens spent until the model stopped.")


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
    cid, seq = strawberry.ID(event.creation_id), event.seq
    usage = Usage(prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens)
    match event.kind:
        case EventKind.STARTED:
            return CreationStarted(creation_id=cid, seq=seq, model=event.model)
        case EventKind.DELTA:
            return TokenDelta(
                creation_id=cid, seq=seq, text=event.text, first_seq=event.first_seq or seq
            )
        case EventKind.PROGRESS:
            return Progress(creation_id=cid, seq=seq, fraction=event.fraction, stage=event.stage)
        case EventKind.COMPLETED:
            return CreationCompleted(creation_id=cid, seq=seq, usage=usage)
        case EventKind.FAILED:
            return CreationFailed(
                creation_id=cid, seq=seq, code=event.code, message=event.message, usage=usage
            )
        case EventKind.CANCELLED:
            return CreationCancelled(creation_id=cid, seq=seq, usage=usage)
