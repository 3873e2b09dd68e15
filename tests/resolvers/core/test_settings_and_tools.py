"""Settings refuse unsafe production values; tool inputs are validated with clear errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from resolvers.core.errors import InvalidInput
from resolvers.core.settings import Settings
from resolvers.tools import get_tool


def test_production_refuses_a_missing_or_weak_secret() -> None:
    urls = {"database_url": "postgres://x@h/db", "redis_url": "redis://h", "s3_bucket": "b"}
    for secret in (None, "short", "changethis"):
        with pytest.raises(ValidationError, match="CK_JWT_SECRET"):
            Settings(env="production", jwt_secret=secret, **urls)
    with pytest.raises(ValidationError, match="CK_DATABASE_URL"):
        Settings(env="production", jwt_secret="s" * 40)
    with pytest.raises(ValidationError, match="CK_S3_BUCKET"):
        Settings(env="production", jwt_secret="s" * 40, **{**urls, "s3_bucket": None})
    production = Settings(env="production", jwt_secret="s" * 40, **urls)
    assert production.engine_kind == "dev"
    assert production.graphiql_enabled is False and Settings().graphiql_enabled is True


def test_only_embedded_dev_mode_picks_the_local_engine_by_itself() -> None:
    """Issue 12: production never falls back to the local models silently."""
    urls = {"database_url": "postgres://x@h/db", "redis_url": "redis://h", "s3_bucket": "b"}
    assert Settings().engine_kind == "local"  # `make run`
    assert Settings(env="test").engine_kind == "dev"
    assert Settings(redis_url="redis://h").engine_kind == "dev"  # services, not embedded
    assert Settings(env="production", jwt_secret="s" * 40, **urls).engine_kind == "dev"
    assert Settings(triton_url="t:8001").engine_kind == "triton"
    assert Settings(env="production", jwt_secret="s" * 40, engine="local", **urls).engine_kind == (
        "local"  # only when named
    )


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CK_TRITON_URL", "triton:8001")
    monkeypatch.setenv("CK_BATCH_INTERVAL_MS", "10")
    settings = Settings()
    assert settings.engine_kind == "triton" and settings.batch_interval_ms == 10
    monkeypatch.setenv("CK_BATCH_INTERVAL_MS", "-1")
    with pytest.raises(ValidationError):
        Settings()


def test_embedded_secret_is_generated_once(tmp_path: object) -> None:
    settings = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    assert settings.signing_secret() == settings.signing_secret()
    assert len(settings.signing_secret()) >= 32


def test_tool_inputs_are_normalised_and_errors_name_the_field() -> None:
    write = get_tool("write")
    assert write.parse({"prompt": "  hi  "}) == {
        "prompt": "hi",
        "genre": "story",
        "max_tokens": 512,
        "temperature": 0.8,
        "seed": None,
    }
    with pytest.raises(InvalidInput) as error:
        write.parse({"prompt": "hi", "genre": "limerick"})
    assert error.value.field == "genre"
    with pytest.raises(InvalidInput) as error:
        write.parse({"prompt": "hi", "unknown": 1})
    assert error.value.field == "unknown"
    report = get_tool("report")
    assert report.parse({"topic": "  many\n spaces  "})["topic"] == "many spaces"
    with pytest.raises(InvalidInput):
        report.parse({"topic": "ok topic", "sections": 13})
    with pytest.raises(InvalidInput):
        get_tool("tarot-of-doom")
