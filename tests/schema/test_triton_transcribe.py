"""The transcribe tool through the whole stack on the real Triton server's stand-in speech model.

The stand-in (`whisper` in tests/triton/server.py) cannot hear: it reads the words of a test
WAV's `ckSP` chunk and reports the length and SHA-256 of the bytes it decoded, so a transcript
shows that these exact bytes reached the model.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

import pytest

from resolvers.core.settings import Settings
from tests.conftest import Server, open_socket, serving
from tests.schema.test_http import CREATIONS
from tests.schema.test_subscriptions import assert_well_formed, events_of, text_of

RATE = 8000
TRANSCRIBE = """
subscription T($input: TranscribeInput!) {
  transcribe(input: $input) {
    __typename creationId seq
    ... on TokenDelta { text firstSeq }
    ... on Progress { stage fraction }
    ... on CreationCompleted {
      usage { completionTokens }
      creation { status output result model }
    }
    ... on CreationFailed { code message }
  }
}
"""
START_TRANSCRIBE = """
mutation T($input: TranscribeInput!) {
  transcribe(input: $input) {
    __typename
    ... on Creation { id status }
    ... on InvalidInputError { code message field }
    ... on Error { code message }
  }
}
"""
CREATION = "query C($id: ID!) { creation(id: $id) { status output result model } }"


def spoken_wav(words: str, seconds: float) -> bytes:
    """A mono 16-bit PCM WAV of a sawtooth, whose `ckSP` chunk holds `words`: what the
    stand-in speech model "hears"."""
    frames = b"".join(
        struct.pack("<h", (i * 97) % 20_000 - 10_000) for i in range(int(RATE * seconds))
    )
    spoken = words.encode()
    fmt = struct.pack("<HHIIHH", 1, 1, RATE, RATE * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"ckSP" + struct.pack("<I", len(spoken)) + spoken + b"\0" * (len(spoken) & 1)
    body += b"data" + struct.pack("<I", len(frames)) + frames
    return b"RIFF" + struct.pack("<I", len(body)) + body


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("words", "language", "timestamps", "prefix", "told"),
    [
        ("the quick brown fox", "en", True, "[00:00] ", "en"),
        ("une autre voix ici", None, False, "", "auto"),
    ],
)
async def test_transcribe_streams_what_the_speech_model_got(  # noqa: PLR0917 (parametrized)
    settings: Settings,
    triton_url: str,
    words: str,
    language: str | None,
    timestamps: bool,
    prefix: str,
    told: str,
) -> None:
    # given a WAV that "says" `words`
    wav = spoken_wav(words, seconds=1.5)
    digest = hashlib.sha256(wav).hexdigest()[:16]
    expected = f"{prefix}{words} [{len(wav)} bytes audio/wav sha256:{digest} language:{told}]"
    tool_input = {"audioBase64": b64(wav), "language": language, "timestamps": timestamps}
    async with serving(settings, engine="triton", triton_url=triton_url) as (
        server,
        graphql,
        token,
    ):
        # when it is transcribed over a websocket
        async with open_socket(server.ws_url, token) as sock:
            op = await sock.subscribe(TRANSCRIBE, {"input": tool_input})
            events = events_of(await sock.collect(op, timeout=30))
        stored = await graphql.query(CREATION, {"id": events[0]["creationId"]}, token)
    # then the streamed transcript and the stored result carry what the model derived from
    # exactly these bytes
    assert_well_formed(events)
    completed = events[-1]
    assert completed["__typename"] == "CreationCompleted", completed
    assert text_of(events) == expected
    assert [e["stage"] for e in events if e["__typename"] == "Progress"] == [
        "decoding",
        "transcribing",
    ]
    assert completed["usage"]["completionTokens"] == len(expected.split(" "))
    assert completed["creation"]["model"] == "triton"
    creation = stored["creation"]
    assert creation["status"] == "COMPLETED"
    assert creation["output"] == expected
    assert creation["result"] == {
        "language": language,
        "duration_seconds": 1.5,
        "format": "wav",
        "text": expected,
    }


def _truncated_wav() -> bytes:
    """A WAV cut off inside its `fmt ` chunk."""
    return spoken_wav("cut short", seconds=0.5)[:30]


def _empty_wav() -> bytes:
    """A well-formed WAV header with no audio frames."""
    return spoken_wav("", seconds=0)


BAD_AUDIO = {
    "truncated WAV": (_truncated_wav(), "WAV file"),
    "WAV without frames": (_empty_wav(), "no audio frames"),
    "AIFF (unsupported)": (b"FORM\0\0\0\x2eAIFFCOMM" + b"\0" * 40, "not a WAV, MP3"),
    "text": (b"hello, this is not audio at all", "not a WAV, MP3"),
}


@pytest.mark.parametrize("name", list(BAD_AUDIO))
async def test_corrupt_or_unsupported_audio_is_a_typed_invalid_input(
    settings: Settings, triton_url: str, name: str
) -> None:
    audio, reason = BAD_AUDIO[name]
    tool_input = {"audioBase64": b64(audio)}
    async with serving(settings, engine="triton", triton_url=triton_url) as (
        server,
        graphql,
        token,
    ):
        # when the mutation starts it, and when the subscription does
        started = await graphql.query(START_TRANSCRIBE, {"input": tool_input}, token)
        message = await _first_message(server, token, tool_input)
        listed = await graphql.query(CREATIONS, {"first": 10}, token)
    # then both refuse it as INVALID_INPUT on the audio field, and nothing was stored
    result = started["transcribe"]
    assert result["__typename"] == "InvalidInputError", result
    assert (result["code"], result["field"]) == ("INVALID_INPUT", "audioBase64")
    assert reason in result["message"]
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"] == {"code": "INVALID_INPUT", "field": "audioBase64"}
    assert listed["creations"]["edges"] == []


async def _first_message(server: Server, token: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    async with open_socket(server.ws_url, token) as sock:
        op = await sock.subscribe(TRANSCRIBE, {"input": tool_input})
        message = await sock.receive()
    assert message["id"] == op
    return message
