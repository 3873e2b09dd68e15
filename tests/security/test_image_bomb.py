"""Issue 11, finding 2: a 2 KB image froze the process. A lossless 6300×6300 WebP (2,112
base64 characters) in imageCaption was decoded in full on the event loop: up to 1.3 s of
stall and 450 MiB per request. The pixel count is now refused from the header, before any
decode (WebP, which Pillow copies while holding the GIL, at a lower limit); what is decoded,
and argon2, run in the bounded CPU pool, off the event loop."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import argon2
import httpx
import pytest
from PIL import Image, ImageFile

from resolvers.core.models import Creation, Upload, UploadStatus
from resolvers.core.settings import Settings
from tests.conftest import GraphQLClient, serving
from tests.schema.test_uploads import upload

CAPTION = """
mutation C($input: ImageCaptionInput!) {
  imageCaption(input: $input, wait: true) {
    __typename
    ... on Creation { id status }
    ... on InvalidInputError { code field message }
    ... on RateLimitedError { code retryAfter }
  }
}
"""
LOGIN = """
mutation L($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) {
    __typename
    ... on AuthSession { accessToken }
    ... on Error { code message }
  }
}
"""
PASSWORD = "correct horse battery"
POOL_THREAD = "ck-cpu"  # resolvers/core/cpu.py names its threads so


def lossless(side: int, fmt: str = "WEBP") -> bytes:
    """A single-colour lossless image: a few KB, however many pixels it claims."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (20, 90, 200)).save(buffer, format=fmt, lossless=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = lossless(6300)
    assert len(data) < 4_096  # the attack: a tiny request
    return data


@pytest.fixture(scope="module")
def big_images() -> dict[tuple[int, int], bytes]:
    """Images at the pixel limits: accepted, and decoded in full."""
    return {(4096, 4096): lossless(4096, "PNG"), (2048, 2048): lossless(2048)}


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[tuple[int, int], str]]]:
    """Every image decode in this process: the image's size and the thread it ran on."""
    seen: list[tuple[tuple[int, int], str]] = []
    load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> Any:
        seen.append((self.size, threading.current_thread().name))
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    yield seen


async def test_an_image_bomb_is_refused_from_its_header_before_any_decode(
    settings: Settings, bomb: bytes, decodes: list[tuple[tuple[int, int], str]]
) -> None:
    # given a user whose daily quota is exactly one caption
    async with serving(settings, token_quota_per_day=160) as (_server, client, token):
        image = base64.b64encode(bomb).decode()

        # when the bomb is sent as in the report, and again with a valid maxTokens
        answers = [
            (await client.query(CAPTION, {"input": tool_input}, token))["imageCaption"]
            for tool_input in (
                {"imageBase64": image, "maxTokens": 1},
                {"imageBase64": image, "maxTokens": 160},
            )
        ]
        small = base64.b64encode(lossless(64)).decode()
        after = await client.query(CAPTION, {"input": {"imageBase64": small}}, token)
        me = (await client.query("{ me { id } }", token=token))["me"]["id"]
        stored = await Creation.filter(owner_id=me).count()

    # then both are typed input errors naming the field, nothing was decoded or stored,
    for answer in answers:
        assert answer["__typename"] == "InvalidInputError", answer
        assert (answer["code"], answer["field"]) == ("INVALID_INPUT", "imageBase64")
        assert "6300×6300" in answer["message"] and "4194304 pixels" in answer["message"]
    assert all(size != (6300, 6300) for size, _thread in decodes)
    # and no quota was spent: the one caption the quota allows still runs
    assert after["imageCaption"]["__typename"] == "Creation", after
    assert after["imageCaption"]["status"] == "COMPLETED"
    assert stored == 1


async def test_an_uploaded_image_bomb_is_rejected_before_any_decode(
    client: GraphQLClient, token: str, bomb: bytes, decodes: list[tuple[tuple[int, int], str]]
) -> None:
    upload_id, response = await upload(client, token, bomb, content_type="image/webp")
    assert response.status_code == 200, response.text

    answer = (await client.query(CAPTION, {"input": {"uploadId": upload_id}}, token))[
        "imageCaption"
    ]

    assert answer["__typename"] == "InvalidInputError", answer
    assert (answer["code"], answer["field"]) == ("INVALID_INPUT", "uploadId")
    assert "4194304 pixels" in answer["message"]
    assert decodes == []
    row = await Upload.get(id=upload_id)
    assert row.status is UploadStatus.REJECTED
    assert await Creation.all().count() == 0


async def test_healthz_answers_while_decodes_and_logins_run_off_the_loop(
    settings: Settings,
    big_images: dict[tuple[int, int], bytes],
    decodes: list[tuple[tuple[int, int], str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hash_threads: list[str] = []
    verify = argon2.PasswordHasher.verify

    def spy(self: argon2.PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        hash_threads.append(threading.current_thread().name)
        return verify(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", spy)
    email = f"user-{uuid.uuid4().hex[:8]}@example.com"
    async with serving(settings) as (server, client, token):
        await client.register(email, PASSWORD)
        inputs = [
            {"input": {"imageBase64": base64.b64encode(data).decode(), "maxTokens": 16 + n}}
            for n in range(2)
            for data in big_images.values()
        ]
        credentials = {"email": email, "password": PASSWORD}

        # given decodes of images at the pixel limits and logins, all at once
        work = [
            *(asyncio.create_task(client.query(CAPTION, one, token)) for one in inputs),
            *(asyncio.create_task(client.query(LOGIN, credentials)) for _ in range(6)),
        ]
        # when /healthz is asked meanwhile (uvicorn runs in this test's event loop)
        answered_during = 0
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            while not all(task.done() for task in work):
                response = await http.get("/healthz")
                assert response.status_code == 200
                answered_during += 1
                await asyncio.sleep(0.02)
        results = await asyncio.gather(*work)

    # then every request succeeded, /healthz kept answering, and the CPU work ran in the pool
    assert all(r["imageCaption"]["status"] == "COMPLETED" for r in results[:4]), results
    assert all(r["login"]["__typename"] == "AuthSession" for r in results[4:]), results
    assert answered_during >= 1
    big = [thread for size, thread in decodes if size in big_images]
    assert len(big) >= 8  # each checked in prepare and measured in the run
    assert all(thread.startswith(POOL_THREAD) for thread in big), big
    assert len(hash_threads) >= 6
    assert all(thread.startswith(POOL_THREAD) for thread in hash_threads), hash_threads
