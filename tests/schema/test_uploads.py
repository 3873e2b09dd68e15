"""Uploads through GraphQL: ask for a URL, PUT the bytes, use them by id; large outputs."""

from __future__ import annotations

import base64
import io
import wave
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from resolvers.core import keys
from resolvers.core.models import Creation, Upload, UploadStatus
from resolvers.core.settings import Settings
from tests.conftest import GraphQLClient, Server, open_socket, serving
from tests.resolvers.storage.test_storage import s3_settings
from tests.schema.test_subscriptions import events_of, text_of

CREATE_UPLOAD = """
mutation Up($input: CreateUploadInput!) {
  createUpload(input: $input) {
    __typename
    ... on UploadTicket { url method headers { name value } expiresAt upload { id status size } }
    ... on InvalidInputError { code field message }
    ... on AuthError { code }
  }
}
"""
CAPTION = """
mutation C($input: ImageCaptionInput!) {
  imageCaption(input: $input, wait: true) {
    __typename
    ... on Creation { id status result output }
    ... on InvalidInputError { code field message }
    ... on NotFoundError { code message }
  }
}
"""
UPLOAD = "query U($id: ID!) { upload(id: $id) { status size reason kind contentType } }"


def png(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(b"\x80" * int(8000 * seconds))
    return buffer.getvalue()


async def upload(
    graphql: GraphQLClient,
    token: str,
    data: bytes,
    *,
    kind: str = "IMAGE",
    content_type: str = "image/png",
    send: bytes | None = None,
) -> tuple[str, httpx.Response]:
    """Create an upload for `data` and PUT `send` (default: `data`) to its URL."""
    variables = {"input": {"kind": kind, "contentType": content_type, "size": len(data)}}
    ticket = (await graphql.query(CREATE_UPLOAD, variables, token))["createUpload"]
    assert ticket["__typename"] == "UploadTicket", ticket
    assert ticket["upload"]["status"] == "PENDING" and ticket["method"] == "PUT"
    headers = {h["name"]: h["value"] for h in ticket["headers"]}
    response = await graphql.http.put(
        ticket["url"], content=data if send is None else send, headers=headers
    )
    return ticket["upload"]["id"], response


async def caption(graphql: GraphQLClient, token: str, tool_input: dict[str, Any]) -> Any:
    return (await graphql.query(CAPTION, {"input": tool_input}, token))["imageCaption"]


async def test_an_uploaded_image_is_captioned_and_marked_ready(
    client: GraphQLClient, token: str
) -> None:
    image = png(64, 48)
    upload_id, response = await upload(client, token, image)
    assert response.status_code == 200, response.text
    created = await caption(client, token, {"uploadId": upload_id})
    assert created["__typename"] == "Creation" and created["status"] == "COMPLETED", created
    assert (created["result"]["width"], created["result"]["height"]) == (64, 48)
    assert (await client.query(UPLOAD, {"id": upload_id}, token))["upload"] == {
        "status": "READY",
        "size": len(image),
        "reason": None,
        "kind": "IMAGE",
        "contentType": "image/png",
    }
    # The creation keeps a checked reference, never the bytes.
    row = await Creation.get(id=created["id"])
    assert row.input["upload"]["size"] == len(image) and "_media_bytes" not in row.input


async def test_the_upload_endpoint_holds_the_client_to_its_declaration(
    client: GraphQLClient, token: str
) -> None:
    image = png()
    variables = {"input": {"kind": "IMAGE", "contentType": "image/png", "size": len(image)}}
    ticket = (await client.query(CREATE_UPLOAD, variables, token))["createUpload"]
    url = ticket["url"]
    put = client.http.put
    assert (await put(url, content=image, headers={"Content-Type": "image/gif"})).status_code == 400
    too_long = await put(url, content=image + b"x", headers={"Content-Type": "image/png"})
    assert too_long.status_code == 413
    short = await put(url, content=image[:-1], headers={"Content-Type": "image/png"})
    assert short.status_code == 400
    forged = url[:-3] + ("abc" if not url.endswith("abc") else "xyz")
    forbidden = await put(forged, content=image, headers={"Content-Type": "image/png"})
    assert forbidden.status_code == 403
    assert "error" in forbidden.json()
    refused = await caption(client, token, {"uploadId": ticket["upload"]["id"]})
    assert "has not been received" in refused["message"]  # no refused PUT stored anything
    ok = await put(url, content=image, headers={"Content-Type": "image/png"})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("declared", "field"),
    [
        ({"kind": "IMAGE", "contentType": "application/pdf", "size": 10}, "contentType"),
        ({"kind": "IMAGE", "contentType": "image/png", "size": 0}, "size"),
        ({"kind": "IMAGE", "contentType": "image/png", "size": 10 * 1024 * 1024 + 1}, "size"),
        ({"kind": "AUDIO", "contentType": "image/png", "size": 10}, "contentType"),
    ],
)
async def test_create_upload_refuses_what_no_tool_could_use(
    client: GraphQLClient, token: str, declared: dict[str, Any], field: str
) -> None:
    result = (await client.query(CREATE_UPLOAD, {"input": declared}, token))["createUpload"]
    assert result["__typename"] == "InvalidInputError" and result["field"] == field, result
    assert await Upload.all().count() == 0


async def test_create_upload_needs_a_user(client: GraphQLClient) -> None:
    variables = {"input": {"kind": "IMAGE", "contentType": "image/png", "size": 10}}
    result = (await client.query(CREATE_UPLOAD, variables))["createUpload"]
    assert result == {"__typename": "AuthError", "code": "UNAUTHENTICATED"}


async def test_bytes_that_are_not_what_they_claim_reject_the_upload(
    client: GraphQLClient, token: str
) -> None:
    fake = b"this is not a png at all" * 4
    upload_id, response = await upload(client, token, fake)
    assert response.status_code == 200
    refused = await caption(client, token, {"uploadId": upload_id})
    assert refused["__typename"] == "InvalidInputError" and refused["field"] == "uploadId"
    state = (await client.query(UPLOAD, {"id": upload_id}, token))["upload"]
    assert state["status"] == "REJECTED" and state["reason"]
    assert await Creation.all().count() == 0
    again = await caption(client, token, {"uploadId": upload_id})
    assert again["__typename"] == "InvalidInputError" and "rejected" in again["message"]


async def test_an_upload_not_sent_yet_is_a_clear_error(client: GraphQLClient, token: str) -> None:
    variables = {"input": {"kind": "IMAGE", "contentType": "image/png", "size": 100}}
    ticket = (await client.query(CREATE_UPLOAD, variables, token))["createUpload"]
    refused = await caption(client, token, {"uploadId": ticket["upload"]["id"]})
    assert refused["__typename"] == "InvalidInputError" and "PUT the file" in refused["message"]


async def test_nobody_uses_or_reads_another_users_upload(client: GraphQLClient, token: str) -> None:
    upload_id, _ = await upload(client, token, png())
    intruder = await client.register()
    refused = await caption(client, intruder, {"uploadId": upload_id})
    assert refused["__typename"] == "NotFoundError", refused
    errors = await client.errors(UPLOAD, {"id": upload_id}, intruder)
    assert errors[0]["extensions"]["code"] == "NOT_FOUND"


async def test_an_audio_upload_is_not_an_image(client: GraphQLClient, token: str) -> None:
    upload_id, _ = await upload(client, token, wav(1), kind="AUDIO", content_type="audio/wav")
    refused = await caption(client, token, {"uploadId": upload_id})
    assert refused["__typename"] == "InvalidInputError" and "AUDIO" in refused["message"]


@pytest.mark.parametrize("both", [True, False])
async def test_exactly_one_image_source(client: GraphQLClient, token: str, both: bool) -> None:
    tool_input: dict[str, Any] = {"style": "SHORT"}
    if both:
        upload_id, _ = await upload(client, token, png())
        tool_input |= {"uploadId": upload_id, "imageBase64": base64.b64encode(png()).decode()}
    refused = await caption(client, token, tool_input)
    assert refused["__typename"] == "InvalidInputError"
    assert refused["message"] == "give exactly one of imageBase64 or uploadId"


async def test_long_audio_uploads_run_on_a_worker(client: GraphQLClient, token: str) -> None:
    query = """
    mutation T($input: TranscribeInput!) {
      transcribe(input: $input) { __typename ... on Creation { id status input } }
    }
    """
    short_id, _ = await upload(client, token, wav(2), kind="AUDIO", content_type="audio/wav")
    long_id, _ = await upload(client, token, wav(150), kind="AUDIO", content_type="audio/wav")
    short = (await client.query(query, {"input": {"uploadId": short_id}}, token))["transcribe"]
    long = (await client.query(query, {"input": {"uploadId": long_id}}, token))["transcribe"]
    assert short["status"] == "RUNNING" and long["status"] == "QUEUED"
    # what the server measured is stored with the input, not shown as if the client sent it
    assert long["input"]["uploadId"] == long_id and "upload" not in long["input"]
    ids = [short["id"], long["id"]]
    measured = {str(row.id): row.input["upload"] for row in await Creation.filter(id__in=ids)}
    assert measured[short["id"]]["long"] is False and measured[long["id"]]["long"] is True
    assert measured[long["id"]]["duration_seconds"] == pytest.approx(150)


async def test_presigned_s3_uploads_end_to_end(
    settings: Settings, s3_endpoint: str, tmp_path: Path
) -> None:
    async with serving(settings, **s3_settings(s3_endpoint, tmp_path)) as (_, graphql, token):
        image = png(30, 90)
        upload_id, response = await upload(graphql, token, image)
        assert response.status_code == 200, response.text
        created = await caption(graphql, token, {"uploadId": upload_id})
        assert created["status"] == "COMPLETED", created
        assert created["result"]["orientation"] == "portrait"


async def test_outputs_over_the_inline_limit_live_in_object_storage(
    settings: Settings, redis: Redis
) -> None:
    query = """
    mutation W { write(input: {prompt: "a long story", maxTokens: 600}, wait: true) {
      ... on Creation { id output } } }
    """
    async with serving(settings, output_inline_bytes=1024) as (server, graphql, token):
        created = (await graphql.query(query, token=token))["write"]
        row = await Creation.get(id=created["id"])
        assert row.output_key is not None and len(row.output.encode()) <= 1024
        assert len(created["output"].encode()) > 1024
        assert created["output"].startswith(row.output)
        stored = settings.data_dir / "objects" / row.output_key
        assert stored.read_text() == created["output"]
        # When the event log has expired, a replay still carries the whole text.
        await redis.delete(keys.event_log(created["id"]))
        async with open_socket(server.ws_url, token) as sock:
            op = await sock.subscribe(
                "subscription F($id: ID!) { creationEvents(id: $id) "
                "{ __typename seq ... on TokenDelta { text firstSeq } } }",
                {"id": created["id"]},
            )
            events = events_of(await sock.collect(op))
        assert text_of(events) == created["output"]


async def test_cached_copies_of_a_large_output_replay_all_of_it(settings: Settings) -> None:
    query = """
    mutation W { write(input: {prompt: "the same long story", maxTokens: 600, seed: 7},
      wait: true) { ... on Creation { id output cached } } }
    """
    async with serving(settings, output_inline_bytes=1024) as (_, graphql, token):
        first = (await graphql.query(query, token=token))["write"]
        copy = (await graphql.query(query, token=token))["write"]
    assert copy["cached"] is True and copy["output"] == first["output"]
    assert len(copy["output"].encode()) > 1024


async def test_rejected_uploads_lose_their_bytes(
    server: Server, client: GraphQLClient, token: str
) -> None:
    fake = b"GIF89a but not really" * 3
    upload_id, _ = await upload(client, token, fake, content_type="image/gif")
    row = await Upload.get(id=upload_id)
    stored = server.app.state.core.settings.data_dir / "objects" / row.key
    assert stored.read_bytes() == fake
    await caption(client, token, {"uploadId": upload_id})
    await row.refresh_from_db()
    assert row.status is UploadStatus.REJECTED and not stored.exists()


async def test_unused_uploads_are_capped_per_user(
    client: GraphQLClient, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("resolvers.upload.MAX_PENDING", 2)
    variables = {"input": {"kind": "IMAGE", "contentType": "image/png", "size": 10}}
    for _ in range(2):
        ticket = (await client.query(CREATE_UPLOAD, variables, token))["createUpload"]
        assert ticket["__typename"] == "UploadTicket"
    refused = (await client.query(CREATE_UPLOAD, variables, token))["createUpload"]
    assert refused["__typename"] == "InvalidInputError" and "not used yet" in refused["message"]
    other = await client.query(CREATE_UPLOAD, variables, await client.register())
    assert other["createUpload"]["__typename"] == "UploadTicket"
