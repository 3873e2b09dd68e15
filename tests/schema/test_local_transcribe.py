"""The transcribe tool through the whole stack on the local engine: Whisper tiny.en hears a WAV
spoken by espeak-ng, over a websocket and through the mutation, and refuses other languages."""

from __future__ import annotations

import base64
import re

from resolvers.core.settings import Settings
from tests.conftest import open_socket, serving
from tests.inference.test_speech import SENTENCE, spoken, words
from tests.schema.test_subscriptions import assert_well_formed, events_of, text_of
from tests.schema.test_triton_transcribe import TRANSCRIBE

TRANSCRIBE_AND_WAIT = """
mutation T($input: TranscribeInput!) {
  transcribe(input: $input, wait: true) {
    __typename
    ... on Creation { status output result }
    ... on Error { code message }
  }
}
"""
CREATION = "query C($id: ID!) { creation(id: $id) { status output } }"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def heard(text: str) -> set[str]:
    return set(words(SENTENCE)) & set(words(text))


async def test_transcribe_streams_the_words_of_a_spoken_sentence(settings: Settings) -> None:
    # given an English sentence spoken by espeak-ng
    tool_input = {"audioBase64": b64(spoken(SENTENCE)), "language": "en", "timestamps": True}
    async with serving(settings, engine="local") as (server, graphql, token):
        # when it is transcribed over a websocket
        async with open_socket(server.ws_url, token) as sock:
            op = await sock.subscribe(TRANSCRIBE, {"input": tool_input})
            events = events_of(await sock.collect(op, timeout=60))
        stored = await graphql.query(CREATION, {"id": events[0]["creationId"]}, token)
    # then the stream, the result and the stored creation carry most of its words, stamped
    assert_well_formed(events)
    completed = events[-1]
    assert completed["__typename"] == "CreationCompleted", completed
    text = text_of(events)
    assert re.match(r"\[00:00\] \w", text), text
    assert len(heard(text)) >= 6, text  # of 8 different words
    assert completed["usage"]["completionTokens"] >= len(words(text)) - 2
    assert completed["creation"]["result"]["text"] == text
    assert stored["creation"] == {"status": "COMPLETED", "output": text}


async def test_transcribe_and_wait_returns_the_transcript(settings: Settings) -> None:
    tool_input = {"audioBase64": b64(spoken(SENTENCE))}
    async with serving(settings, engine="local") as (_server, graphql, token):
        data = await graphql.query(TRANSCRIBE_AND_WAIT, {"input": tool_input}, token)
    result = data["transcribe"]
    assert result["__typename"] == "Creation", result
    assert result["status"] == "COMPLETED"
    assert len(heard(result["output"])) >= 6, result["output"]
    assert result["result"]["language"] is None  # detected, not asked


async def test_a_language_the_local_model_does_not_know_fails_with_its_code(
    settings: Settings,
) -> None:
    tool_input = {"audioBase64": b64(spoken(SENTENCE)), "language": "fr"}
    async with (
        serving(settings, engine="local") as (server, _graphql, token),
        open_socket(server.ws_url, token) as sock,
    ):
        op = await sock.subscribe(TRANSCRIBE, {"input": tool_input})
        events = events_of(await sock.collect(op, timeout=60))
    assert_well_formed(events)
    failed = events[-1]
    assert failed["__typename"] == "CreationFailed", failed
    assert failed["code"] == "UNSUPPORTED_LANGUAGE"
    assert text_of(events) == ""
