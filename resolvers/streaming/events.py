"""Creation events: the sequence-numbered log every subscriber reads.

One flat, frozen message type keeps the wire format (Redis Stream fields and pub/sub JSON)
trivial; `kind` says which fields matter. Every creation's log is 1, 2, 3... and ends with
exactly one terminal event (completed, failed or cancelled).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    """What happened; the last three end the stream."""

    STARTED = "started"
    DELTA = "delta"
    PROGRESS = "progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELLED)


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a creation's log. `first_seq` < `seq` only for coalesced deltas.

    A delta's token counts are those of its text and of the prompts counted since the
    previous delta; a terminal event's are the creation's totals.
    """

    creation_id: str
    seq: int
    kind: EventKind
    text: str = ""
    fraction: float = 0.0
    stage: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    code: str = ""
    message: str = ""
    model: str = ""
    first_seq: int = 0

    @property
    def terminal(self) -> bool:
        return self.kind.terminal

    def encode(self) -> str:
        """Compact JSON; default-valued fields are left out."""
        data: dict[str, Any] = {"c": self.creation_id, "s": self.seq, "k": self.kind.value}
        for key, value in (
            ("t", self.text),
            ("f", self.fraction),
            ("g", self.stage),
            ("p", self.prompt_tokens),
            ("n", self.completion_tokens),
            ("e", self.code),
            ("m", self.message),
            ("o", self.model),
            ("a", self.first_seq),
        ):
            if value:
                data[key] = value
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str | bytes) -> Event:
        """Inverse of `encode`; raises ValueError on anything else."""
        try:
            data = json.loads(raw)
            return cls(
                creation_id=str(data["c"]),
                seq=int(data["s"]),
                kind=EventKind(data["k"]),
                text=str(data.get("t", "")),
                fraction=float(data.get("f", 0.0)),
                stage=str(data.get("g", "")),
                prompt_tokens=int(data.get("p", 0)),
                completion_tokens=int(data.get("n", 0)),
                code=str(data.get("e", "")),
                message=str(data.get("m", "")),
                model=str(data.get("o", "")),
                first_seq=int(data.get("a", 0)),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not an event: {raw!r:.80}") from exc


def coalesce(events: list[Event]) -> list[Event]:
    """Merge runs of consecutive deltas into one, so a lagging reader catches up in few steps.

    The merged delta keeps the last `seq` (resume after it) and the first in `first_seq`.
    """
    merged: list[Event] = []
    for event in events:
        last = merged[-1] if merged else None
        if last is not None and last.kind is EventKind.DELTA and event.kind is EventKind.DELTA:
            merged[-1] = Event(
                creation_id=event.creation_id,
                seq=event.seq,
                kind=EventKind.DELTA,
                text=last.text + event.text,
                prompt_tokens=last.prompt_tokens + event.prompt_tokens,
                completion_tokens=last.completion_tokens + event.completion_tokens,
                first_seq=last.first_seq or last.seq,
            )
        else:
            merged.append(event)
    return merged


def complete(events: list[Event]) -> bool:
    """True when `events` are a log's whole beginning: seq 1, then no hole (a delta with
    `first_seq` stands for the seqs it merged)."""
    last = 0
    for event in events:
        if (event.first_seq or event.seq) != last + 1:
            return False
        last = event.seq
    return True


QUEUE_STAGE = "queued (position {})"  # the stage of a Progress event while a run waits


def queue_notice(creation_id: str, seq: int, position: int, fraction: float = 0.0) -> Event:
    """A Progress event telling a waiting creation its place in line (1 = next)."""
    stage = QUEUE_STAGE.format(position)
    return Event(creation_id, seq, EventKind.PROGRESS, fraction=fraction, stage=stage)


def is_queue_notice(event: Event) -> bool:
    """True for the Progress events `queue_notice` makes (they mark no step of the work)."""
    return event.kind is EventKind.PROGRESS and event.stage.startswith("queued (")
