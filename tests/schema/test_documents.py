"""Automatic persisted queries (Apollo's protocol) and trusted-documents mode."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from resolvers.core import keys
from resolvers.core.settings import Settings
from schema.app import create_app
from schema.documents import TrustedDocuments
from tests.conftest import REGISTER, Server, open_socket, serving

TOOLS = "query Tools { tools { name } }"
TOOLS_HASH = hashlib.sha256(TOOLS.encode()).hexdigest()
HEADERS = {"content-type": "application/json"}


def _persisted(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def _post(url: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(url + "/graphql", json=body)


async def _get(url: str, params: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(url + "/graphql", params=params, headers=HEADERS)


async def test_apq_registers_a_checked_hash_then_runs_it_by_hash(
    settings: Settings, redis: Redis
) -> None:
    async with serving(settings) as (server, _client, _token):
        unknown = await _post(server.url, {"extensions": _persisted(TOOLS_HASH)})
        registered = await _post(server.url, {"query": TOOLS, "extensions": _persisted(TOOLS_HASH)})
        by_post = await _post(server.url, {"extensions": _persisted(TOOLS_HASH)})
        by_get = await _get(server.url, {"extensions": json.dumps(_persisted(TOOLS_HASH))})

    assert unknown.status_code == 200
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert unknown.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    for answered in (registered, by_post, by_get):
        assert answered.status_code == 200
        assert answered.json()["data"]["tools"]
    assert by_get.headers["cache-control"].startswith("public")
    # Replicas share the registration through Redis.
    assert await redis.get(keys.persisted_query(TOOLS_HASH)) == TOOLS.encode()


async def test_another_replica_knows_a_registered_hash(settings: Settings) -> None:
    async with serving(settings) as (first, _client, _token):
        await _post(first.url, {"query": TOOLS, "extensions": _persisted(TOOLS_HASH)})
    async with Server(create_app(settings)) as second:
        answered = await _post(second.url, {"extensions": _persisted(TOOLS_HASH)})

    assert answered.json()["data"]["tools"]


async def test_a_wrong_hash_is_refused_and_registers_nothing(settings: Settings) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    async with serving(settings) as (server, _client, _token):
        mismatch = await _post(server.url, {"query": TOOLS, "extensions": _persisted(wrong)})
        afterwards = await _post(server.url, {"extensions": _persisted(wrong)})
        malformed = await _post(server.url, {"extensions": _persisted("abc")})
        version = await _post(
            server.url, {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": wrong}}}
        )

    assert mismatch.status_code == 400
    assert mismatch.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
    assert afterwards.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert malformed.status_code == version.status_code == 400


async def test_a_document_that_fails_validation_is_not_registered(settings: Settings) -> None:
    invalid = "{ noSuchField }"
    digest = hashlib.sha256(invalid.encode()).hexdigest()
    async with serving(settings) as (server, _client, _token):
        first = await _post(server.url, {"query": invalid, "extensions": _persisted(digest)})
        again = await _post(server.url, {"extensions": _persisted(digest)})

    assert first.json()["errors"]
    assert again.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_embedded_mode_keeps_hashes_in_process(embedded_settings: Settings) -> None:
    async with serving(embedded_settings) as (server, _client, _token):
        await _post(server.url, {"query": TOOLS, "extensions": _persisted(TOOLS_HASH)})
        answered = await _post(server.url, {"extensions": _persisted(TOOLS_HASH)})

    assert answered.json()["data"]["tools"]


async def test_a_mutation_by_hash_is_not_run_over_get(settings: Settings) -> None:
    mutation = 'mutation { login(input: {email: "a@b.example", password: "x"}) { __typename } }'
    digest = hashlib.sha256(mutation.encode()).hexdigest()
    async with serving(settings) as (server, _client, _token):
        await _post(server.url, {"query": mutation, "extensions": _persisted(digest)})
        by_get = await _get(server.url, {"extensions": json.dumps(_persisted(digest))})

    assert by_get.status_code == 405


# Trusted documents ---------------------------------------------------------------------

LISTED_SUBSCRIPTION = (
    "subscription W($input: WriteInput!) { write(input: $input) { __typename seq } }"
)


def _apollo_manifest(path: Path) -> Path:
    operations = [
        {"id": hashlib.sha256(body.encode()).hexdigest(), "name": name, "type": kind, "body": body}
        for name, kind, body in (
            ("Tools", "query", TOOLS),
            ("W", "subscription", LISTED_SUBSCRIPTION),
            ("Register", "mutation", REGISTER),  # how `serving` signs its user up
        )
    ]
    path.write_text(
        json.dumps(
            {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
        )
    )
    return path


async def test_trusted_mode_runs_listed_documents_only(settings: Settings, tmp_path: Path) -> None:
    manifest = _apollo_manifest(tmp_path / "manifest.json")
    async with serving(settings, persisted_documents=manifest) as (server, client, token):
        by_hash = await _post(server.url, {"extensions": _persisted(TOOLS_HASH)})
        by_get = await _get(server.url, {"extensions": json.dumps(_persisted(TOOLS_HASH))})
        by_id = await _post(server.url, {"documentId": TOOLS_HASH})
        by_text = await _post(server.url, {"query": TOOLS})
        unlisted = await _post(server.url, {"query": "{ tools { name description } }"})
        unknown = await _post(server.url, {"documentId": "0" * 64})
        registering = await _post(
            server.url,
            {
                "query": "{ __typename }",
                "extensions": _persisted(hashlib.sha256(b"{ __typename }").hexdigest()),
            },
        )
        async with open_socket(server.ws_url, token) as sock:
            op_id = await sock.subscribe('subscription { write(input: {prompt: "x"}) { seq } }')
            refused_ws = await sock.receive()

    for answered in (by_hash, by_get, by_id, by_text):
        assert answered.status_code == 200
        assert answered.json()["data"]["tools"]
    assert unlisted.status_code == registering.status_code == 403
    assert unlisted.json()["errors"][0]["extensions"]["code"] == "QUERY_NOT_IN_SAFELIST"
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
    assert refused_ws["id"] == op_id
    assert refused_ws["type"] in ("error", "next")
    assert "QUERY_NOT_IN_SAFELIST" in json.dumps(refused_ws["payload"])
    del client


async def test_a_relay_manifest_is_read_by_doc_id(settings: Settings, tmp_path: Path) -> None:
    manifest = tmp_path / "relay.json"
    manifest.write_text(json.dumps({"tools-1": TOOLS}))
    async with Server(
        create_app(settings.model_copy(update={"persisted_documents": manifest}))
    ) as server:
        answered = await _post(server.url, {"doc_id": "tools-1"})

    assert answered.json()["data"]["tools"]


def test_a_broken_manifest_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "apollo-persisted-query-manifest", "operations": [{"id": 1}]}')

    with pytest.raises(ValueError, match="CK_PERSISTED_DOCUMENTS"):
        TrustedDocuments.load(broken)
    with pytest.raises(ValueError, match="cannot read"):
        TrustedDocuments.load(tmp_path / "missing.json")
