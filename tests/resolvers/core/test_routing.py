"""Model routing: weighted A/B variants, the variant recorded, fallback before the first token."""

from __future__ import annotations

from collections import Counter

import pytest

from inference.base import ModelUnavailable
from inference.dev import DevEngine
from resolvers.core.models import CreationStatus
from resolvers.core.routing import Router, Variant
from resolvers.core.settings import Settings
from tests.resolvers.streaming.test_cache import a_user, events, write
from tests.resolvers.streaming.test_runner import ScriptedEngine, core_with

ROUTES = {
    "write": [
        {"name": "main", "backend": "triton", "model": "llama3-70b", "adapter": "house-style"},
        {"name": "backup", "backend": "dev", "model": "dev", "fallback": True},
    ]
}


def with_routes(settings: Settings) -> Settings:
    """Settings whose write tool runs on 'triton' (a test double) with a dev fallback."""
    routes = Settings(routes=ROUTES).routes  # type: ignore[arg-type]
    return settings.model_copy(
        update={"engine": "triton", "triton_url": "127.0.0.1:1", "routes": routes}
    )


def test_variants_are_drawn_by_weight_and_fallbacks_only_stand_by() -> None:
    dev = DevEngine(token_delay=0)
    router = Router(
        {
            "write": [
                Variant(name="a", backend="dev", model="m1", weight=3),
                Variant(name="b", backend="dev", model="m2", weight=1),
                Variant(name="c", backend="dev", model="m3", fallback=True),
            ]
        },
        {"dev": dev},
        defaults={},
    )
    drawn = Counter(router.choose("write").name for _ in range(4000))
    assert set(drawn) == {"a", "b"}
    assert 0.70 < drawn["a"] / 4000 < 0.80


def test_routes_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("CK_ROUTES", json.dumps(ROUTES))
    routes = Settings().routes
    assert [v.name for v in routes["write"]] == ["main", "backup"]
    assert routes["write"][0].adapter == "house-style" and routes["write"][1].fallback
    monkeypatch.setenv("CK_ROUTES", json.dumps({"write": [{"name": "x", "backend": "gpu9"}]}))
    with pytest.raises(ValueError):
        Settings()


async def test_a_backend_down_before_its_first_token_falls_back(settings: Settings) -> None:
    routed = with_routes(settings)
    async with core_with(routed, ScriptedEngine(0, ModelUnavailable("gpu node down"))) as core:
        principal = await a_user()
        creation = await write(core, principal)
        log = await events(core, principal, creation)
        await creation.refresh_from_db()
    assert log[-1].completion_tokens == 40 and creation.status is CreationStatus.COMPLETED
    assert (creation.variant, creation.model) == ("backup", "dev-engine")


async def test_no_fallback_once_text_was_sent(settings: Settings) -> None:
    routed = with_routes(settings)
    async with core_with(routed, ScriptedEngine(3, ModelUnavailable("stream broke"))) as core:
        principal = await a_user()
        creation = await write(core, principal)
        log = await events(core, principal, creation)
        await creation.refresh_from_db()
    assert log[-1].code == "MODEL_UNAVAILABLE"
    assert creation.variant == "main" and creation.status is CreationStatus.FAILED
