"""Settings of every process, read from `CK_*` environment variables by the composition roots.

With no configuration at all the service runs embedded: SQLite in `CK_DATA_DIR`, an in-process
Redis, an in-process job runner and the dev engine. Each `CK_*_URL` switches one part to its
production counterpart.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from resolvers.core.routing import Variant

_UNSAFE_SECRETS = {"changethis", "secret", "changeme", "dev"}


class DeploymentSettings(BaseModel):
    """Where this process keeps its state and how it reports: embedded or production services,
    logs, traces, metrics."""

    env: Literal["dev", "test", "production"] = Field(
        "dev", description="production refuses unsafe defaults such as a missing JWT secret"
    )
    data_dir: Path = Field(Path(".data"), description="embedded mode: SQLite file and secrets")
    database_url: str | None = Field(
        None, description="postgres://user:pass@host:5432/db; unset = SQLite in data_dir"
    )
    database_command_timeout: float = Field(
        5, gt=0, le=300, description="seconds a query may take before its request fails"
    )
    redis_url: str | None = Field(
        None, description="redis://host:6379/0; unset = in-process Redis and job runner"
    )
    log_format: Literal["auto", "text", "json"] = Field(
        "auto", description="auto = json lines in production, text otherwise"
    )
    tracing: bool = Field(
        False,
        description="export OpenTelemetry traces over OTLP (the `otel` extra; endpoint from "
        "OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    worker_metrics_port: int | None = Field(
        None, ge=1, le=65_535, description="a worker serves Prometheus metrics on this port"
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="when set, GET /metrics and the details of /readyz need "
        "`Authorization: Bearer <token>`; production without it serves neither publicly",
    )


class EngineSettings(BaseModel):
    """Which models make the text: the engine, its backends (Triton, an OpenAI-compatible API, the
    local models), each tool's model and the routes."""

    engine: Literal["auto", "dev", "triton", "local"] = Field(
        "auto",
        description="auto = triton when CK_TRITON_URL is set; else, embedded outside "
        "production and tests, the local engine (small real models on the CPU); else the dev "
        "engine (deterministic stand-in text)",
    )
    triton_url: str | None = Field(None, description="host:port of Triton's gRPC endpoint")
    triton_stream_timeout: float = Field(600, gt=0, description="deadline of one Triton stream")
    triton_idle_timeout: float = Field(30, gt=0, description="max seconds between two tokens")
    triton_connect_timeout: float = Field(5, gt=0)
    openai_base_url: str | None = Field(
        None, description="an OpenAI-compatible API (DeepSeek, OpenAI...): the 'openai' backend"
    )
    openai_api_key: SecretStr | None = Field(None, description="its API key")
    openai_timeout: float = Field(60, gt=0, description="seconds to headers and between chunks")
    openai_max_retries: int = Field(3, ge=0, le=10, description="on 429/5xx, before any text")
    local_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="local engine: CPU threads per sequence (llama.cpp's threads spin: more "
        "than the idle cores makes every token slower, not faster)",
    )
    local_slots: int = Field(
        2, ge=1, le=16, description="local engine: sequences generated at once (queue beyond)"
    )
    local_context_tokens: int = Field(
        2048, ge=256, le=8192, description="local engine: prompt plus answer, in tokens"
    )
    dev_token_delay: float = Field(0.02, ge=0, le=1, description="dev engine seconds per token")
    write_model: str = Field("writer", description="Triton model name of the write tool")
    report_model: str = Field("writer", description="Triton model name of the report tool")
    translate_model: str = Field(
        "opus-mt", description="opus-mt = one Triton model per pair, opus-mt-<src>-<tgt>"
    )
    code_model: str = Field("writer", description="Triton model name of the code tool")
    social_model: str = Field(
        "writer", description="Triton model of socialPost (the LoRA adapter is per platform)"
    )
    caption_model: str = Field("clip", description="Triton model name of imageCaption")
    transcribe_model: str = Field("whisper", description="Triton model name of transcribe")
    swot_model: str = Field("writer", description="Triton model name of the swot tool")
    tarot_model: str = Field("writer", description="Triton model name of the tarot tool")
    video_model: str = Field("writer", description="Triton model name of the videoScript tool")
    routes: dict[str, list[Variant]] = Field(
        default_factory=dict,
        description="per tool: backend/model variants with weights and a fallback (JSON); "
        "see resolvers/core/routing.py",
    )


class AccessSettings(BaseModel):
    """Who may call: tokens, sessions, OIDC, password hashing and the sign-in throttle."""

    jwt_secret: SecretStr | None = Field(
        None, description="HS256 key, at least 32 characters; embedded mode generates one"
    )
    jwt_issuer: str = "creation-king"
    access_token_ttl_seconds: int = Field(
        900, ge=60, le=86_400, description="access tokens are short-lived; refresh them"
    )
    refresh_token_ttl_days: int = Field(30, ge=1, le=365, description="sign-in session length")
    oidc_issuer: str | None = Field(
        None, description="accept RS256 access tokens of this OIDC issuer (e.g. Auth0)"
    )
    oidc_audience: str | None = Field(None, description="the audience those tokens must name")
    oidc_jwks_url: str | None = Field(None, description="unset = <issuer>.well-known/jwks.json")
    argon2_time_cost: int = Field(3, ge=1, le=10)
    argon2_memory_kib: int = Field(65_536, ge=8, le=1_048_576)
    login_failures_allowed: int = Field(
        5,
        ge=1,
        le=1_000,
        description="wrong passwords for one account from one client address before sign-in "
        "there is locked for a while (HTTP, websocket and /oauth/token alike)",
    )
    login_lock_seconds: int = Field(
        30,
        ge=1,
        le=3_600,
        description="the first lock after too many wrong passwords; each further one doubles, "
        "up to 15 minutes",
    )
    token_endpoint_per_minute: int = Field(
        30, ge=1, le=100_000, description="POST /oauth/token requests per client address"
    )


class LimitSettings(BaseModel):
    """How much one caller may use: requests, tokens, sockets, subscriptions, upload bytes."""

    rate_limit_per_minute: int = Field(
        10_000, ge=1, description="requests per caller (user or key), token bucket"
    )
    rate_limit_burst: int | None = Field(
        None, ge=1, description="bucket size; unset = a sixth of the per-minute rate"
    )
    token_quota_per_day: int = Field(
        2_000_000, ge=0, description="model tokens per user per UTC day; 0 = unlimited"
    )
    max_subscriptions_per_user: int = Field(
        50, ge=1, le=10_000, description="open subscriptions per user on one API process"
    )
    max_subscriptions_per_connection: int = Field(20, ge=1, le=100)
    max_sockets_per_user: int = Field(
        20, ge=1, le=10_000, description="open websockets per user on one API process"
    )
    max_sockets_per_address: int = Field(
        100, ge=1, le=100_000, description="open websockets per client address on one API process"
    )
    upload_quota_bytes: int = Field(
        1_073_741_824, ge=0, description="bytes of stored uploads per user; 0 = unlimited"
    )


class StreamingSettings(BaseModel):
    """How creations are produced and followed: batching, the event log, leases, the answer cache,
    the job queue."""

    batch_interval_ms: int = Field(40, ge=0, le=1000, description="token batching window")
    batch_max_tokens: int = Field(32, ge=1, le=1024, description="flush a batch at this size")
    event_log_maxlen: int = Field(50_000, ge=100, description="events kept per creation")
    event_log_ttl_seconds: int = Field(86_400, ge=60, description="event log lifetime")
    follow_poll_seconds: float = Field(
        1.0, gt=0, le=30, description="a quiet subscriber re-reads the log this often"
    )
    producer_lease_seconds: float = Field(
        10, ge=1, le=300, description="a fast creation whose producer is silent this long ends"
    )
    subscriber_buffer: int = Field(
        256, ge=8, description="events held per slow subscriber before it re-reads the log"
    )
    cache_ttl_seconds: int = Field(3600, ge=0, description="how long answers are reused")
    cache_ttl_overrides: dict[str, int] = Field(
        default_factory=dict, description='per tool, e.g. {"tarot": 0}; 0 = never reused'
    )
    cache_scope: Literal["user", "global"] = Field(
        "user",
        description="who shares answers and runs in flight: one user's identical requests "
        "only, or everyone's (answers to requests that carry no uploaded content)",
    )
    max_concurrent_jobs: int = Field(8, ge=1, le=256, description="per worker process")
    job_timeout_seconds: int = Field(1800, ge=10)
    job_max_tries: int = Field(3, ge=1, le=10)


class StorageSettings(BaseModel):
    """Where uploads and large outputs are kept: S3 or the data folder."""

    s3_bucket: str | None = Field(
        None, description="bucket for uploads and large outputs; unset = files in data_dir"
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO...); unset = AWS S3"
    )
    s3_public_endpoint_url: str | None = Field(
        None,
        description="the endpoint as browsers reach it, for presigned upload URLs (e.g. a "
        "MinIO behind a public host); unset = CK_S3_ENDPOINT_URL",
    )
    s3_region: str = Field("us-east-1", description="the bucket's region")
    s3_access_key_id: str | None = Field(
        None, description="unset = boto3's usual credential chain (env, IAM role...)"
    )
    s3_secret_access_key: SecretStr | None = Field(None, description="goes with the key id")
    upload_url_ttl_seconds: int = Field(
        900, ge=60, le=86_400, description="how long an upload URL accepts the file"
    )
    public_url: str | None = Field(
        None,
        description="embedded uploads: this server's URL as clients reach it; "
        "unset = the address the server listens on (never the request's Host header)",
    )
    output_inline_bytes: int = Field(
        262_144, ge=1_024, description="longer outputs are kept in object storage"
    )


class GuardSettings(BaseModel):
    """What screens user text before a model sees it."""

    shield: bool = Field(True, description="screen tool inputs for prompt injection")
    shield_classifier: str | None = Field(
        None,
        description="`module:factory` returning a classifier (async score(text) -> 0..1) "
        "consulted after the rules; it fails open",
    )


class EdgeSettings(BaseModel):
    """What browsers and GraphQL clients meet at the edge: origins, caching, introspection, trusted
    documents, GraphiQL."""

    allowed_origins: list[str] = Field(
        default_factory=list,
        description="browser origins (`https://app.example.com`, scheme://host[:port]) allowed "
        "to call the API: CORS for HTTP and the websocket origin check alike",
    )
    allow_loopback_origins: bool | None = Field(
        None,
        description="also allow pages on http(s)://localhost, 127.0.0.1 and [::1], any port; "
        "unset = on except in production",
    )
    cors_max_age_seconds: int = Field(
        600, ge=0, le=86_400, description="how long browsers may reuse a CORS preflight"
    )
    public_max_age_seconds: int = Field(
        60,
        ge=0,
        le=3_600,
        description="Cache-Control max-age of anonymous query answers over GET (a CDN may "
        "share them); 0 = never cached. Signed-in answers are always private, no-store",
    )
    introspection: Literal["public", "signed-in", "off"] = Field(
        "public",
        description="who may run __schema/__type: anyone (partners' codegen needs it), only "
        "signed-in callers, or nobody",
    )
    persisted_documents: Path | None = Field(
        None,
        description="trusted documents: an Apollo (apollo-persisted-query-manifest) or Relay "
        "(id to text) JSON manifest; when set, only its operations run",
    )
    apq_ttl_seconds: int = Field(
        86_400, ge=60, le=30 * 86_400, description="how long a registered APQ hash is kept"
    )
    graphiql: bool | None = Field(
        None, description="serve GraphiQL on GET /graphql; unset = on except in production"
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins_are_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
            if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
                raise ValueError(f"{origin!r}: an origin has no path, query or user")
        return [origin.rstrip("/").lower() for origin in origins]


class Settings(
    DeploymentSettings,
    EngineSettings,
    AccessSettings,
    LimitSettings,
    StreamingSettings,
    StorageSettings,
    GuardSettings,
    EdgeSettings,
    BaseSettings,
):
    """Every knob of the service, composed of the groups above (one per concern). Each field
    is read from `CK_<FIELD NAME>`: grouping changes no variable's name."""

    model_config = SettingsConfigDict(env_prefix="CK_", frozen=True, extra="ignore")

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env != "production":
            return self
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if len(secret) < 32 or secret.lower() in _UNSAFE_SECRETS:
            raise ValueError("CK_JWT_SECRET must be set to at least 32 random characters")
        if not self.database_url or not self.redis_url:
            raise ValueError("production needs CK_DATABASE_URL and CK_REDIS_URL")
        if not self.s3_bucket:
            # Replicas share uploads and large outputs: a local folder would split them.
            raise ValueError("production needs CK_S3_BUCKET (object storage shared by replicas)")
        return self

    @property
    def graphiql_enabled(self) -> bool:
        """Whether GET /graphql serves the GraphiQL IDE."""
        return self.graphiql if self.graphiql is not None else self.env != "production"

    @property
    def loopback_origins_allowed(self) -> bool:
        """Whether pages on localhost may call the API without being listed."""
        if self.allow_loopback_origins is not None:
            return self.allow_loopback_origins
        return self.env != "production"

    @property
    def embedded_redis(self) -> bool:
        """True when the event log, cache and job queue live in this process."""
        return self.redis_url is None

    @property
    def engine_kind(self) -> Literal["dev", "triton", "local"]:
        """The generation backend this process uses (production never picks the local engine
        by itself: it serves what its settings and routes name)."""
        if self.engine != "auto":
            return self.engine
        if self.triton_url:
            return "triton"
        return "local" if self.embedded_redis and self.env == "dev" else "dev"

    @property
    def db_url(self) -> str:
        """The Tortoise connection URL, SQLite in the data folder when none is configured.

        SQLite runs in WAL mode (Tortoise's default) with `synchronous=NORMAL`: a commit no
        longer waits for fsync (0.42 ms a commit before, 0.02 ms after, on the way to every
        first token). The database stays consistent on a crash; a power cut may lose the
        last commits, which suits embedded mode, a development setup."""
        if self.database_url:
            return self.database_url
        return f"sqlite://{(self.data_dir / 'creation-king.sqlite3').resolve()}?synchronous=NORMAL"

    def signing_secret(self) -> str:
        """The JWT key; embedded mode keeps a generated one in the data folder across restarts."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        path = self.data_dir / "jwt-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()
