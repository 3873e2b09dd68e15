"""Every Redis key and channel name we use, in one place (as arq keeps its constants).

Per-creation keys share the hash tag `{c:<id>}` so they live in one Redis Cluster slot.
"""

from __future__ import annotations

PREFIX = "ck"
CONTROL_CHANNEL = f"{PREFIX}:control"
JOB_QUEUE = f"{PREFIX}:arq:queue"


def event_log(creation_id: str) -> str:
    """The Redis Stream holding a creation's events; entry ids are `0-<seq>`."""
    return f"{PREFIX}:{{c:{creation_id}}}:log"


def event_channel(creation_id: str) -> str:
    """The pub/sub channel carrying a creation's events for low latency."""
    return f"{PREFIX}:{{c:{creation_id}}}:events"


def running_usage(creation_id: str) -> str:
    """The tokens of the deltas a creation has streamed so far (a hash: p, c)."""
    return f"{PREFIX}:{{c:{creation_id}}}:usage"


def cancel_flag(creation_id: str) -> str:
    """Set when a cancel was requested, so a producer that starts late still sees it."""
    return f"{PREFIX}:{{c:{creation_id}}}:cancel"


def producer_lease(creation_id: str) -> str:
    """Refreshed while a process produces the creation; its absence means nobody does."""
    return f"{PREFIX}:{{c:{creation_id}}}:lease"


def job_id(creation_id: str) -> str:
    """The arq job id of a creation's long run; one job per creation."""
    return f"creation:{creation_id}"


def cache_entry(key: str) -> str:
    """Points at the finished creation whose answer serves identical requests."""
    return f"{PREFIX}:cache:{{{key}}}"


def in_flight(key: str) -> str:
    """Points at the creation now generating the answer to this request."""
    return f"{PREFIX}:inflight:{{{key}}}"


def claimed(creation_id: str) -> str:
    """Set when a runner claims a queued creation: queue notices may no longer be appended."""
    return f"{PREFIX}:{{c:{creation_id}}}:claimed"


def shared_run(creation_id: str) -> str:
    """The id under which a cancelled creation's run goes on for the requests sharing it:
    its log, lease and final structured result use this id."""
    return f"{creation_id}:shared"


def shared_result(creation_id: str) -> str:
    """The structured result of a shared run that went on after its source was cancelled."""
    return f"{PREFIX}:{{c:{shared_run(creation_id)}}}:result"


def revoked_session(session_id: str) -> str:
    """Set when a sign-in session ends; its access tokens are refused until they expire."""
    return f"{PREFIX}:session:{{{session_id}}}:revoked"


def rate_bucket(subject: str) -> str:
    """A caller's request token bucket (hash of tokens and last refill time)."""
    return f"{PREFIX}:rate:{{{subject}}}"


def token_quota(subject: str, period: str) -> str:
    """Model tokens a caller reserved in one quota period."""
    return f"{PREFIX}:quota:{{{subject}}}:{period}"


def persisted_query(sha256: str) -> str:
    """An automatic persisted query's text, by its SHA-256 (Apollo's APQ)."""
    return f"{PREFIX}:apq:{sha256}"


def signin_failures(account: str, address: str | None = None) -> str:
    """Failed sign-ins of one account (a hash of its name), from one client address or from
    anywhere: a hash of fails, lock level, locked-until and refused attempts."""
    suffix = f":from:{address}" if address is not None else ":all"
    return f"{PREFIX}:signin:{{a:{account}}}{suffix}"


def signin_address_failures(address: str) -> str:
    """Failed sign-ins from one client address, to any account (same hash as above)."""
    return f"{PREFIX}:signin:{{ip:{address}}}"


def live_workers() -> str:
    """A sorted set of arq worker ids, each scored with the Redis server time (seconds) at
    which its heartbeat lapses: members scored in the past are workers that stopped beating."""
    return f"{PREFIX}:workers"
