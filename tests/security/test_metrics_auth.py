"""Issue 11, low finding: production answered `/metrics` (operation names, tool usage,
queue depth) and `/readyz`'s per-dependency details to anyone. With CK_METRICS_TOKEN set
both need the token; production without one serves no metrics at all; the readiness status
code stays public for the cluster's probes."""

from __future__ import annotations

from pydantic import SecretStr

from resolvers.core.settings import Settings
from tests.conftest import serving

METRICS_TOKEN = "scrape-me-" + "x" * 30


async def test_metrics_need_the_token_when_one_is_set(settings: Settings) -> None:
    async with serving(settings, metrics_token=SecretStr(METRICS_TOKEN)) as (server, client, _):
        metrics = server.url + "/metrics"
        bare = await client.http.get(metrics)
        wrong = await client.http.get(metrics, headers={"Authorization": "Bearer nope"})
        basic = await client.http.get(metrics, headers={"Authorization": f"Basic {METRICS_TOKEN}"})
        right = await client.http.get(metrics, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    assert bare.status_code == wrong.status_code == basic.status_code == 401
    assert bare.headers["www-authenticate"].startswith("Bearer")
    assert "ck_http_request_seconds" not in bare.text + wrong.text + basic.text
    assert right.status_code == 200 and "ck_http_request_seconds" in right.text


async def test_production_without_a_token_serves_no_metrics(settings: Settings) -> None:
    async with serving(settings, env="production") as (server, client, _):
        response = await client.http.get(server.url + "/metrics")
    assert response.status_code == 404
    assert "ck_" not in response.text


async def test_readiness_details_are_for_operators_only(settings: Settings) -> None:
    async with serving(settings, metrics_token=SecretStr(METRICS_TOKEN)) as (server, client, _):
        readyz = server.url + "/readyz"
        public = await client.http.get(readyz)
        operator = await client.http.get(
            readyz, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
    async with serving(settings, env="production") as (server, client, _):
        production = await client.http.get(server.url + "/readyz")

    # The status code is the probe's answer, for everyone.
    assert public.status_code == operator.status_code == production.status_code == 200
    assert public.json() == production.json() == {"status": "ready"}
    assert operator.json()["checks"] == {"database": True, "redis": True, "engine": True}


async def test_dev_and_test_keep_metrics_open(settings: Settings) -> None:
    async with serving(settings) as (server, client, _):
        response = await client.http.get(server.url + "/metrics")
        readyz = await client.http.get(server.url + "/readyz")
    assert response.status_code == 200 and "ck_http_request_seconds" in response.text
    assert "checks" in readyz.json()
