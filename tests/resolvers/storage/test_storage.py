"""Object storage: the local folder (embedded) and S3 through boto3 against a moto server."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from pydantic import SecretStr

from resolvers.access.auth import Auth
from resolvers.core.errors import InvalidInput, NotAuthenticated, ServiceUnavailable
from resolvers.storage.objects import LocalStore, ObjectMissing, S3Store, make_store
from tests.conftest import S3_BUCKET, TEST_SECRET, free_port, make_settings


def s3_settings(endpoint: str, tmp_path: Path) -> dict[str, object]:
    """Settings fields that point the service at the moto bucket."""
    return {
        "data_dir": tmp_path / "data",
        "s3_bucket": S3_BUCKET,
        "s3_endpoint_url": endpoint,
        "s3_access_key_id": "testing",
        "s3_secret_access_key": SecretStr("testing"),
    }


@pytest.fixture
def local(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "objects", secret=TEST_SECRET)


async def test_local_store_keeps_reads_and_deletes_objects(local: LocalStore) -> None:
    await local.put("uploads/u/1", b"hello", "text/plain")
    assert await local.get("uploads/u/1", limit=5) == b"hello"
    stat = await local.stat("uploads/u/1")
    assert stat is not None and stat.size == 5
    with pytest.raises(InvalidInput, match="limit is 4 bytes"):
        await local.get("uploads/u/1", limit=4)
    await local.delete("uploads/u/1")
    assert await local.stat("uploads/u/1") is None
    with pytest.raises(ObjectMissing):
        await local.get("uploads/u/1", limit=5)


@pytest.mark.parametrize("key", ["../escape", "uploads/../../escape", "/etc/passwd", ""])
async def test_local_store_refuses_keys_that_leave_its_folder(local: LocalStore, key: str) -> None:
    with pytest.raises(ValueError, match="leaves the store"):
        await local.put(key, b"x", "text/plain")


def test_an_upload_ticket_says_what_it_allows_and_nothing_else(local: LocalStore) -> None:
    target = local.upload_target(
        "uploads/u/2", content_type="image/png", size=10, expires_in=60, base_url="http://h:1/"
    )
    assert target.method == "PUT" and target.headers == {"Content-Type": "image/png"}
    ticket = target.url.removeprefix("http://h:1/uploads/")
    assert local.read_ticket(ticket) == ("uploads/u/2", "image/png", 10)
    with pytest.raises(InvalidInput, match="invalid or has expired"):
        local.read_ticket(ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB"))
    # Another store's secret cannot make tickets for this one.
    other = LocalStore(Path("/nonexistent"), secret="another secret of at least 32 chars!!")
    forged = other.upload_target(
        "uploads/u/3", content_type="image/png", size=10, expires_in=60, base_url=""
    ).url.removeprefix("/uploads/")
    with pytest.raises(InvalidInput):
        local.read_ticket(forged)


def test_an_expired_ticket_is_refused(local: LocalStore) -> None:
    target = local.upload_target(
        "uploads/u/4", content_type="image/png", size=10, expires_in=60, base_url=""
    )
    ticket = target.url.removeprefix("/uploads/")
    claims = jwt.decode(ticket, local._key).claims
    stale = jwt.encode({"alg": "HS256"}, {**claims, "exp": int(time.time()) - 10}, local._key)
    with pytest.raises(InvalidInput, match="expired"):
        local.read_ticket(stale)


def test_tickets_and_access_tokens_cannot_stand_for_each_other(local: LocalStore) -> None:
    auth = Auth(secret=TEST_SECRET, issuer="ck", ttl_seconds=60, time_cost=1, memory_kib=1024)
    with pytest.raises(InvalidInput):
        local.read_ticket(auth.issue("user-1"))
    ticket = local.upload_target(
        "k", content_type="image/png", size=1, expires_in=60, base_url=""
    ).url.removeprefix("/uploads/")
    with pytest.raises(NotAuthenticated):
        auth.verify(ticket)
    # Even a ticket-shaped token signed with the raw JWT secret is refused.
    raw = jwt.encode(
        {"alg": "HS256"},
        {"aud": "creation-king/upload", "key": "k", "ct": "image/png", "size": 1, "exp": 2**31},
        OctKey.import_key(TEST_SECRET),
    )
    with pytest.raises(InvalidInput):
        local.read_ticket(raw)


async def test_s3_presigned_put_round_trip(s3_endpoint: str, tmp_path: Path) -> None:
    store = make_store(make_settings(**s3_settings(s3_endpoint, tmp_path)))
    assert isinstance(store, S3Store)
    target = store.upload_target(
        "uploads/u/5", content_type="image/png", size=4, expires_in=60, base_url="ignored"
    )
    assert target.url.startswith(s3_endpoint) and "X-Amz-Signature" in target.url
    async with httpx.AsyncClient() as http:
        response = await http.put(target.url, content=b"\x89PNG", headers=target.headers)
    assert response.status_code == 200, response.text
    stat = await store.stat("uploads/u/5")
    assert stat is not None and (stat.size, stat.content_type) == (4, "image/png")
    assert await store.get("uploads/u/5", limit=4) == b"\x89PNG"
    with pytest.raises(InvalidInput, match="limit is 3 bytes"):
        await store.get("uploads/u/5", limit=3)
    await store.delete("uploads/u/5")
    with pytest.raises(ObjectMissing):
        await store.get("uploads/u/5", limit=4)


async def test_s3_put_and_get_of_an_output(s3_endpoint: str, tmp_path: Path) -> None:
    store = make_store(make_settings(**s3_settings(s3_endpoint, tmp_path)))
    text = "长文本 " * 1000
    await store.put("outputs/x.txt", text.encode(), "text/plain; charset=utf-8")
    assert (await store.get("outputs/x.txt", limit=10**6)).decode() == text


async def test_unreachable_s3_is_service_unavailable(tmp_path: Path) -> None:
    settings = make_settings(**s3_settings(f"http://127.0.0.1:{free_port()}", tmp_path))
    store = make_store(settings)
    with pytest.raises(ServiceUnavailable):
        await store.put("k", b"x", "text/plain")


async def test_presigned_urls_can_name_the_public_endpoint(
    s3_endpoint: str, tmp_path: Path
) -> None:
    public = s3_endpoint.replace("127.0.0.1", "localhost")  # how browsers reach the store
    settings = make_settings(**s3_settings(s3_endpoint, tmp_path), s3_public_endpoint_url=public)
    store = make_store(settings)
    target = store.upload_target(
        "uploads/u/6", content_type="image/png", size=4, expires_in=60, base_url="ignored"
    )
    assert target.url.startswith(public + "/")
    async with httpx.AsyncClient() as http:
        response = await http.put(target.url, content=b"\x89PNG", headers=target.headers)
    assert response.status_code == 200, response.text
    assert await store.get("uploads/u/6", limit=4) == b"\x89PNG"  # read back inside
