"""Issue 11, low findings on uploads: the 15-minute capability URLs appeared in the access
log; pending uploads never expired, so 50 unused ones locked a user out for good; READY
uploads had no storage quota; and the Host header was reflected into embedded upload URLs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from resolvers.core.models import Upload, UploadStatus
from resolvers.core.settings import Settings
from resolvers.upload import MAX_PENDING, USE_GRACE_SECONDS
from schema.app import create_app
from tests.conftest import GraphQLClient, Server, serving
from tests.schema.test_uploads import CAPTION, CREATE_UPLOAD, png, upload

DELETE_UPLOAD = """
mutation D($id: ID!) {
  deleteUpload(id: $id) { __typename ... on Upload { id status } ... on Error { code } }
}
"""


def _ask(size: int = 10) -> dict[str, Any]:
    return {"input": {"kind": "IMAGE", "contentType": "image/png", "size": size}}


async def _age(upload_ids: list[str], seconds: float) -> None:
    """Make uploads look `seconds` old."""
    then = datetime.now(UTC) - timedelta(seconds=seconds)
    await Upload.filter(id__in=upload_ids).update(created_at=then)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def access_log() -> Iterator[_Lines]:
    """What uvicorn's access logger writes, at INFO (enter it once uvicorn configured its
    loggers: that drops their handlers)."""
    logger = logging.getLogger("uvicorn.access")
    lines, level = _Lines(), logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)


async def test_the_upload_ticket_is_not_in_the_access_log(settings: Settings) -> None:
    async with Server(create_app(settings)) as server:
        with access_log() as log:
            client = GraphQLClient(server.url)
            try:
                token = await client.register()
                data = png()
                ticket = (await client.query(CREATE_UPLOAD, _ask(len(data)), token))["createUpload"]
                sent = await client.http.put(
                    ticket["url"], content=data, headers={"Content-Type": "image/png"}
                )
            finally:
                await client.aclose()

    secret = ticket["url"].rsplit("/uploads/", 1)[1]
    assert sent.status_code == 200
    puts = [line for line in log.lines if '"PUT /uploads/' in line]
    assert puts and all("/uploads/<redacted>" in line for line in puts), log.lines
    assert not [line for line in log.lines if secret in line or secret[:40] in line]


async def test_stale_pending_uploads_do_not_lock_a_user_out(
    server: Server, client: GraphQLClient, token: str
) -> None:
    # given a user who asked for MAX_PENDING uploads and never used them
    ids = []
    for _ in range(MAX_PENDING):
        ticket = (await client.query(CREATE_UPLOAD, _ask(), token))["createUpload"]
        ids.append(ticket["upload"]["id"])
    refused = (await client.query(CREATE_UPLOAD, _ask(), token))["createUpload"]
    assert refused["__typename"] == "InvalidInputError"
    ttl = server.app.state.core.settings.upload_url_ttl_seconds

    # when their URLs expire, they stop counting at once...
    await _age(ids, ttl + 1)
    again = (await client.query(CREATE_UPLOAD, _ask(), token))["createUpload"]
    assert again["__typename"] == "UploadTicket", again
    assert await Upload.filter(id__in=ids).count() == MAX_PENDING  # still usable a while

    # ...and once past the grace they are deleted, bytes and all, at the next request
    data = png()
    sent_id, sent = await upload(client, token, data)
    assert sent.status_code == 200
    stored = (
        server.app.state.core.settings.data_dir / "objects" / (await Upload.get(id=sent_id)).key
    )
    assert stored.exists()
    await _age([*ids, sent_id], ttl + USE_GRACE_SECONDS + 1)
    third = (await client.query(CREATE_UPLOAD, _ask(), token))["createUpload"]
    assert third["__typename"] == "UploadTicket"
    assert await Upload.filter(id__in=[*ids, sent_id]).count() == 0
    assert not stored.exists()


@pytest.fixture(params=["postgres", "sqlite"])
def any_settings(
    request: pytest.FixtureRequest, settings: Settings, embedded_settings: Settings
) -> Settings:
    return settings if request.param == "postgres" else embedded_settings


async def test_the_upload_quota_refuses_and_says_how_much(any_settings: Settings) -> None:
    data = png()
    quota = 3 * len(data)
    async with serving(any_settings, upload_quota_bytes=quota) as (_server, client, token):
        # given two READY uploads and one pending that fit the quota
        ready_ids = []
        for _ in range(2):
            upload_id, _sent = await upload(client, token, data)
            used = await client.query(CAPTION, {"input": {"uploadId": upload_id}}, token)
            assert used["imageCaption"]["__typename"] == "Creation", used
            ready_ids.append(upload_id)
        assert await Upload.filter(id__in=ready_ids, status=UploadStatus.READY).count() == 2
        pending = (await client.query(CREATE_UPLOAD, _ask(len(data) // 2), token))["createUpload"]
        assert pending["__typename"] == "UploadTicket"

        # when one more would go over it
        refused = (await client.query(CREATE_UPLOAD, _ask(len(data)), token))["createUpload"]

        # then it is refused, saying what is held and allowed; deleting one makes room
        deleted = await client.query(DELETE_UPLOAD, {"id": ready_ids[0]}, token)
        fits = (await client.query(CREATE_UPLOAD, _ask(len(data)), token))["createUpload"]
        stranger = await client.query(DELETE_UPLOAD, {"id": ready_ids[1]}, await client.register())

    held = 2 * len(data) + len(data) // 2
    assert refused["__typename"] == "InvalidInputError" and refused["field"] == "size"
    assert f"{held:,}" in refused["message"] and f"{quota:,}" in refused["message"]
    assert deleted["deleteUpload"] == {
        "__typename": "Upload",
        "id": ready_ids[0],
        "status": "READY",
    }
    assert fits["__typename"] == "UploadTicket", fits
    assert stranger["deleteUpload"] == {"__typename": "NotFoundError", "code": "NOT_FOUND"}


async def test_a_forged_host_header_is_not_in_upload_urls(settings: Settings) -> None:
    async with serving(settings) as (server, client, token):
        response = await client.http.post(
            client.url,
            json={"query": CREATE_UPLOAD, "variables": _ask()},
            headers={"Authorization": f"Bearer {token}", "Host": "attacker.example"},
        )
        url = response.json()["data"]["createUpload"]["url"]
    async with serving(settings, public_url="https://api.example.com") as (_s, public, token):
        response = await public.http.post(
            public.url,
            json={"query": CREATE_UPLOAD, "variables": _ask()},
            headers={"Authorization": f"Bearer {token}", "Host": "attacker.example"},
        )
        configured = response.json()["data"]["createUpload"]["url"]

    assert "attacker.example" not in url
    assert url.startswith(server.url + "/uploads/")  # the address the server listens on
    assert configured.startswith("https://api.example.com/uploads/")
