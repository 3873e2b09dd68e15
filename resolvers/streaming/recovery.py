"""Ending creations whose producer is gone, so that no follower ever waits forever.

A follower that hears nothing for a poll interval calls `settle`. It repairs a log that lacks
the ending the row already has (a producer that died between the two writes), and ends a run
nobody produces any more: no producer lease, and for long tools no arq job left to retry it.
The row is changed by compare-and-set and the log refuses a second ending, so a producer that
turns out to be alive wins cleanly. A producer is alive while it holds its lease or has
checkpointed the row lately (a Redis that lost the lease does not make it an orphan).

When the log lost events (Redis restarted empty), the row's checkpoint is the record: the
ending keeps the text and seq the row holds, and goes after them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from resolvers.core.models import Creation, CreationStatus
from resolvers.streaming.events import Event, EventKind, complete
from resolvers.streaming.feed import Feed
from resolvers.streaming.history import StaleProducer
from resolvers.streaming.queue import JobQueue
from resolvers.tools import Mode, get_tool

log = logging.getLogger(__name__)
_ENDINGS = {
    CreationStatus.COMPLETED: EventKind.COMPLETED,
    CreationStatus.CANCELLED: EventKind.CANCELLED,
    CreationStatus.FAILED: EventKind.FAILED,
}


async def settle(creation_id: str, *, feed: Feed, queue: JobQueue) -> None:
    """Make sure a quiet creation either has a live producer or ends."""
    tail = await feed.history.last_event(creation_id)
    if tail is not None and tail.terminal:
        return
    creation = await Creation.get_or_none(id=creation_id)
    if creation is None:
        return
    if creation.status.terminal:
        # At the seq the row ended on, even if the log lost what came before it.
        await _append_ending(creation, max((tail.seq if tail else 0) + 1, creation.last_seq), feed)
        return
    if await feed.history.lease_held(creation_id):
        return
    now = datetime.now(UTC)
    if (now - max(creation.created_at, creation.updated_at)).total_seconds() < feed.lease_seconds:
        return  # just created, or checkpointed lately: its producer lives
    if get_tool(creation.tool).mode_for(creation.input) is Mode.LONG and await queue.pending(
        creation_id
    ):
        # RUNNING with no lease: its worker died. Let arq hand the job to a live worker now.
        if creation.status is CreationStatus.RUNNING and await queue.reclaim(
            creation_id, idle_seconds=feed.lease_seconds
        ):
            log.warning("creation %s: its worker stopped; the job is retried now", creation_id)
        return  # a worker will (re)try it
    await end_creation(
        creation_id,
        feed=feed,
        code="INTERRUPTED",
        message="the process producing this creation stopped",
    )


async def end_creation(creation_id: str, *, feed: Feed, code: str, message: str) -> bool:
    """End a creation from outside its producer as FAILED; False if it had ended already.

    Its output is what the log streamed, or the row's checkpoint if the log lost events."""
    events = await feed.history.read(creation_id, after=0, count=1_000_000)
    row = await Creation.get_or_none(id=creation_id)
    if row is None:
        return False
    logged = events[-1].seq if events else 0
    streamed: dict[str, object] = {}
    if complete(events) and logged >= row.last_seq:
        deltas = [e for e in events if e.kind is EventKind.DELTA]
        streamed = {
            "output": "".join(e.text for e in deltas),
            "output_key": None,
            "prompt_tokens": sum(e.prompt_tokens for e in deltas),
            "completion_tokens": sum(e.completion_tokens for e in deltas),
        }
    else:
        log.warning("creation %s: its log lost events; ending it from the row", creation_id)
    seq = max(logged, row.last_seq) + 1
    ended = await Creation.filter(
        id=creation_id, status__in=[CreationStatus.QUEUED, CreationStatus.RUNNING]
    ).update(
        status=CreationStatus.FAILED,
        error_code=code,
        error_message=message,
        last_seq=seq,
        finished_at=datetime.now(UTC),
        **streamed,
    )
    if not ended:
        return False
    creation = await Creation.get(id=creation_id)
    return await _append_ending(creation, seq, feed)


async def _append_ending(creation: Creation, seq: int, feed: Feed) -> bool:
    """Write the row's ending into the log at `seq`; False if someone else wrote one."""
    ending = Event(
        str(creation.id),
        seq,
        _ENDINGS[creation.status],
        prompt_tokens=creation.prompt_tokens,
        completion_tokens=creation.completion_tokens,
        code=creation.error_code or "",
        message=creation.error_message or "",
    )
    try:
        await feed.publish(ending)
    except StaleProducer:
        return False
    if creation.last_seq != seq:
        await Creation.filter(id=creation.id).update(last_seq=seq)
    log.warning("creation %s: ended from outside its producer at seq %d", creation.id, seq)
    return True
