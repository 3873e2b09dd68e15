"""Open websockets of this process: capped per user and per client address, indexed by the
sign-in session or API key they were opened with, and closed when it ends.

A logout or a key revocation is announced on the control channel (`announce_revoked`); every
replica closes its sockets of that session or key, and with them their running
subscriptions. Credentials that merely expire close their sockets on a timer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Final

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from resolvers.access.auth import Principal
from resolvers.core import keys, metrics
from resolvers.core.bus import Bus
from resolvers.core.errors import RateLimited

log = logging.getLogger(__name__)

CLOSE_EXPIRED: Final = 4401  # reconnect with a fresh token
CLOSE_REVOKED: Final = 4403  # the session ended or the key was revoked: sign in again
CLOSE_TOO_MANY: Final = 4429  # over a socket cap

# Closes the socket with (code, reason) and ends its operations.
Closer = Callable[[int, str], Awaitable[None]]


class OpenSocket:
    """One socket of this process: its client address, then its principal once known.
    Registered while its `with` block runs (`Sockets.open`)."""

    __slots__ = ("_closer", "_closing", "_sockets", "_timer", "address", "principal")

    def __init__(self, sockets: Sockets, address: str, closer: Closer) -> None:
        self.address = address
        self.principal: Principal | None = None
        self._sockets = sockets
        self._closer = closer
        self._timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None

    def bind(self, principal: Principal) -> None:
        """Count the socket against its user and close it when the credentials expire;
        RateLimited when the user has too many sockets open."""
        self._sockets._bind(self, principal)
        delay = max(0.0, principal.expires_at - time.time())
        self._timer = asyncio.get_running_loop().call_later(
            delay, self.close, CLOSE_EXPIRED, "the access token expired"
        )

    def close(self, code: int, reason: str) -> None:
        """Close the socket soon (once), from any task."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            await self._closer(code, reason)
        except Exception:  # a task of its own: nobody else would see the error
            log.exception("closing a websocket failed")

    def __enter__(self) -> OpenSocket:
        self._sockets._by_address[self.address] += 1
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._sockets._unregister(self)


class Sockets:
    """The registry of this process's open sockets, with caps per user and per address."""

    def __init__(self, *, per_user: int, per_address: int) -> None:
        self._per_user = per_user
        self._per_address = per_address
        self._by_address: Counter[str] = Counter()
        self._by_user: Counter[str] = Counter()
        self._by_credential: defaultdict[str, set[OpenSocket]] = defaultdict(set)

    def listen(self, bus: Bus) -> None:
        """Close the sockets of sessions and keys revoked on any replica."""
        bus.on_message(keys.CONTROL_CHANNEL, self._on_control)

    def open(self, address: str, closer: Closer) -> OpenSocket:
        """A socket to register for the life of a `with` block; RateLimited (now) when its
        address has too many. (A class, not a generator: every idle socket keeps it.)"""
        if self._by_address[address] >= self._per_address:
            metrics.RATE_LIMITED.labels("sockets").inc()
            raise RateLimited(
                f"too many open sockets from this address (at most {self._per_address})",
                retry_after=1,
            )
        return OpenSocket(self, address, closer)

    def _unregister(self, socket: OpenSocket) -> None:
        _discount(self._by_address, socket.address)
        if socket.principal is not None:
            _discount(self._by_user, socket.principal.user_id)
            for credential in _credentials(socket.principal):
                held = self._by_credential[credential]
                held.discard(socket)
                if not held:
                    del self._by_credential[credential]

    def close_revoked(self, *, session_id: str | None = None, key_id: str | None = None) -> int:
        """Close this process's sockets of a session or key; how many there were."""
        found: set[OpenSocket] = set()
        if session_id is not None:
            found |= self._by_credential.get(f"session:{session_id}", set())
        if key_id is not None:
            found |= self._by_credential.get(f"key:{key_id}", set())
        reason = "this session has ended" if session_id else "this API key was revoked"
        for socket in found:
            socket.close(CLOSE_REVOKED, reason)
        return len(found)

    def _bind(self, socket: OpenSocket, principal: Principal) -> None:
        if socket.principal is not None:
            raise RuntimeError("a socket is bound to one principal")
        if self._by_user[principal.user_id] >= self._per_user:
            metrics.RATE_LIMITED.labels("sockets").inc()
            raise RateLimited(
                f"too many open sockets for this account (at most {self._per_user})",
                retry_after=1,
            )
        socket.principal = principal
        self._by_user[principal.user_id] += 1
        for credential in _credentials(principal):
            self._by_credential[credential].add(socket)

    async def _on_control(self, message: str) -> None:
        data = json.loads(message)
        revoked = data.get("revoked") if isinstance(data, dict) else None
        if not isinstance(revoked, dict):
            return  # another control signal (a cancel)
        session_id, key_id = revoked.get("session"), revoked.get("key")
        self.close_revoked(
            session_id=session_id if isinstance(session_id, str) else None,
            key_id=key_id if isinstance(key_id, str) else None,
        )


async def announce_revoked(
    redis: Redis, *, session_id: str | None = None, key_id: str | None = None
) -> None:
    """Tell every replica (this one too) to close the sockets of a session or key.
    Best effort: a socket that misses it is refused at its next operation anyway."""
    revoked = {"session": session_id} if session_id else {"key": key_id}
    try:
        await redis.publish(keys.CONTROL_CHANNEL, json.dumps({"revoked": revoked}))
    except (redis_errors.RedisError, OSError) as exc:
        log.warning("could not announce a revocation: %s", exc)


def _credentials(principal: Principal) -> list[str]:
    found = []
    if principal.session_id is not None:
        found.append(f"session:{principal.session_id}")
    if principal.key_id is not None:
        found.append(f"key:{principal.key_id}")
    return found


def _discount(counter: Counter[str], name: str) -> None:
    counter[name] -= 1
    if counter[name] <= 0:
        del counter[name]
