"""Sign-in throttling: wrong passwords, and wrong OAuth client secrets, lock the door a while.

    RateLimited (resolvers.core.errors)
     └── Locked     sign-in is locked for this account, address or both; see `retry_after`

Three counters in Redis watch every attempt: the account from this client address (its cap
is `login_failures_allowed`), the account from anywhere (ten times that) and the address for
any account (twenty times that, against password spraying). The attempt after a counter's
cap of failures locks it for `login_lock_seconds`, doubling with each further lock up to 15
minutes; a counter forgets everything 15 minutes after its last attempt or lock. Attempts
while locked are refused before any check and only counted, so they neither extend the
lock nor fill the audit log (the next lock's note says how many there were). Attempts in
flight count too: failures plus attempts in flight may not exceed twice the cap, so a burst
of concurrent guesses cannot slip many past it. A right secret clears its account+address
counter. The owner at another address is not locked out by a guesser elsewhere until the
account's own, higher cap is reached; either way the refusal says when to try again.
A Redis failure lets attempts through (logged), as the request limiter does.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Literal

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from resolvers.core import keys, metrics
from resolvers.core.errors import InvalidCredentials, NotAuthenticated, RateLimited

log = logging.getLogger(__name__)

LONGEST_LOCK_SECONDS = 900
MEMORY_SECONDS = 900  # how long a counter remembers its failures and locks
IN_FLIGHT_SECONDS = 60  # an attempt begun longer ago than this has ended, whatever it said
ACCOUNT_FACTOR = 10  # the cap of an account across addresses, in pair caps
ADDRESS_FACTOR = 20  # the cap of an address across accounts, in pair caps
_SCOPES = ("account and address", "account", "address")
Mode = Literal["attempt", "fail", "success", "undo"]

# KEYS: counters of one Redis slot, each a hash {fails, level, until, refused, flying, at}.
# ARGV: mode, first lock ms, longest lock ms, memory ms, in-flight ms, then a cap per key.
# attempt: {0, 0, 0} when admitted (counted in flight), else {ms to wait, index of the key
#   whose lock began now (0: none), attempts refused during that key's earlier locks};
# fail: the attempt failed; success: it succeeded (KEYS[1] is cleared); undo: it never ran.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mode = ARGV[1]
local base, longest = tonumber(ARGV[2]), tonumber(ARGV[3])
local memory, in_flight = tonumber(ARGV[4]), tonumber(ARGV[5])
local function field(key, name)
  return tonumber(redis.call('HGET', key, name) or '0')
end
local function flying(key)
  if now - field(key, 'at') > in_flight then
    return 0
  end
  return field(key, 'flying')
end
local function remember(key)
  redis.call('PEXPIRE', key, math.max(0, field(key, 'until') - now) + memory)
end
if mode ~= 'attempt' then
  for i, key in ipairs(KEYS) do
    if mode == 'success' and i == 1 then
      redis.call('DEL', key)
    elseif redis.call('EXISTS', key) == 1 then
      redis.call('HSET', key, 'flying', math.max(0, flying(key) - 1))
      if mode == 'fail' then
        redis.call('HINCRBY', key, 'fails', 1)
      end
      remember(key)
    end
  end
  return {0, 0, 0}
end
local wait = 0
for _, key in ipairs(KEYS) do
  local left = field(key, 'until') - now
  if left > 0 then
    redis.call('HINCRBY', key, 'refused', 1)
    wait = math.max(wait, left)
  end
end
if wait > 0 then
  return {wait, 0, 0}
end
for i, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[5 + i])
  if field(key, 'fails') >= cap then
    local level = redis.call('HINCRBY', key, 'level', 1)
    local lock = math.floor(math.min(base * 2 ^ (level - 1), longest))
    local refused = field(key, 'refused')
    redis.call('HSET', key, 'fails', 0, 'until', tostring(now + lock), 'refused', 0)
    redis.call('PEXPIRE', key, lock + memory)
    return {lock, i, refused}
  end
  if field(key, 'fails') + flying(key) >= 2 * cap then
    return {1000, 0, 0}
  end
end
for _, key in ipairs(KEYS) do
  redis.call('HSET', key, 'flying', flying(key) + 1, 'at', tostring(now))
  remember(key)
end
return {0, 0, 0}
"""


class Locked(RateLimited):
    """Too many failed sign-ins: refused before the secret was checked. `began` is a note
    for the audit log when this refusal started the lock (None while it merely holds)."""

    def __init__(self, message: str, *, retry_after: float, began: str | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.began = began


def account_of(email: str) -> str:
    """The throttle's name for the account an e-mail names, known or not."""
    return "user:" + email.strip().lower()[:254]


def client_of(client_id: str) -> str:
    """The throttle's name for an OAuth client id, known or not."""
    return "oauth:" + client_id.strip()[:200]


class Throttle:
    """Counts sign-in attempts per account and client address; see the module docstring."""

    def __init__(self, redis: Redis, *, allowed: int, lock_seconds: int) -> None:
        self._allowed = allowed
        self._lock_ms = lock_seconds * 1000
        self._script = redis.register_script(_SCRIPT)

    @contextlib.asynccontextmanager
    async def attempt(self, account: str, address: str | None) -> AsyncIterator[None]:
        """Admit one attempt on `account` from `address` (Locked when locked) for the block
        to check its secret: InvalidCredentials or NotAuthenticated out of the block count
        as a failure, a normal exit as a success, any other error as no attempt."""
        counters = _Counters(_digest(account), address or "unknown", self._allowed)
        await self._admit(counters)
        try:
            yield
        except (InvalidCredentials, NotAuthenticated):
            await self._settle(counters, "fail")
            raise
        except Exception:
            await self._settle(counters, "undo")
            raise
        await self._settle(counters, "success")

    async def _admit(self, counters: _Counters) -> None:
        wait_ms, index, refused = await self._run(counters.account, "attempt", counters.caps)
        scope = _SCOPES[index - 1] if index else ""
        if wait_ms == 0:
            spray = counters.address
            wait_ms, index, refused = await self._run(spray, "attempt", counters.address_cap)
            if wait_ms == 0:
                return
            scope = _SCOPES[2] if index else ""
            await self._run(counters.account, "undo", counters.caps)  # it never ran
        metrics.RATE_LIMITED.labels("signin").inc()
        seconds = wait_ms / 1000
        began = None
        if index:
            began = f"locked {seconds:.0f} s ({scope}); {refused} attempts refused before"
        raise Locked(
            f"too many failed sign-in attempts; try again in {seconds:.0f} s",
            retry_after=seconds,
            began=began,
        )

    async def _settle(self, counters: _Counters, mode: Mode) -> None:
        await self._run(counters.account, mode, counters.caps)
        await self._run(counters.address, "undo" if mode == "success" else mode, [0])

    async def _run(self, names: list[str], mode: Mode, caps: list[int]) -> tuple[int, int, int]:
        longest, memory = LONGEST_LOCK_SECONDS * 1000, MEMORY_SECONDS * 1000
        args: list[str | int] = [mode, self._lock_ms, longest, memory, IN_FLIGHT_SECONDS * 1000]
        try:
            wait, index, refused = await self._script(keys=names, args=[*args, *caps])
        except (redis_errors.RedisError, OSError) as exc:
            log.warning("sign-in throttle unavailable, attempt let through: %s", exc)
            return (0, 0, 0)
        return int(wait), int(index), int(refused)


class _Counters:
    """The counter keys of one attempt and their caps: the account's (one Redis slot) and
    the address's (another)."""

    def __init__(self, subject: str, address: str, allowed: int) -> None:
        self.account = [keys.signin_failures(subject, address), keys.signin_failures(subject)]
        self.caps = [allowed, allowed * ACCOUNT_FACTOR]
        self.address = [keys.signin_address_failures(address)]
        self.address_cap = [allowed * ADDRESS_FACTOR]


def _digest(account: str) -> str:
    # Key names carry no e-mail address: a short hash tells accounts apart well enough.
    return hashlib.sha256(account.encode("utf-8", "surrogatepass")).hexdigest()[:32]
