"""The local engine through the API (issue 12): `write` answers with a real model, a request
that waits for a free model hears its place in line, a cancel stops the model, and the tools
the local models cannot serve keep the dev engine's honest answers."""

from __future__ import annotations

import re
from typing import Any

from resolvers.core.settings import Settings
from tests.conftest import open_socket, serving
from tests.schema.test_subscriptions import WRITE, assert_well_formed, events_of, text_of

COLOUR = re.compile(r"\b(red|orange|yellow|green|blue|indigo|violet|purple)\b", re.IGNORECASE)
CANCEL = "mutation C($id: ID!) { cancelCreation(id: $id) { ... on Creation { status } } }"
MODEL_OF = "query M($id: ID!) { creation(id: $id) { model modelName } }"
TRANSLATE = """
mutation T($input: TranslateInput!) { translate(input: $input, wait: true) {
  ... on Creation {
    status model modelName output details { ... on TranslateResult { translated } }
  }
} }
"""


async def test_write_answers_with_the_local_model(settings: Settings) -> None:
    async with serving(settings, engine="local") as (server, graphql, token):
        answers: list[list[dict[str, Any]]] = []
        async with open_socket(server.ws_url, token) as sock:
            for seed in (1, 2, 3):
                prompt = {"prompt": "Name three colours of the rainbow.", "maxTokens": 150}
                op = await sock.subscribe(WRITE, {"input": {**prompt, "seed": seed}})
                answers.append(events_of(await sock.collect(op, timeout=120)))
        stored = await graphql.query(MODEL_OF, {"id": answers[0][0]["creationId"]}, token)
    assert stored["creation"] == {"model": "local", "modelName": "smollm2-135m-instruct-q4_1"}
    for events in answers:
        assert_well_formed(events)
        assert events[0]["model"] == "local"
        completed = events[-1]
        assert completed["__typename"] == "CreationCompleted", completed
        assert completed["creation"]["output"] == text_of(events)
        # real token counts: the prompt as the model's tokenizer counts it, one per token
        assert completed["usage"]["promptTokens"] > 20
        assert 0 < completed["usage"]["completionTokens"] <= 150
    # a 135M-parameter model answers this in most draws, not all
    named = [COLOUR.search(text_of(events)) for events in answers]
    assert any(named), [text_of(events)[:200] for events in answers]


async def test_a_request_waiting_for_the_model_hears_its_place(settings: Settings) -> None:
    async with (
        serving(settings, engine="local", local_slots=1) as (server, _graphql, token),
        open_socket(server.ws_url, token) as first,
        open_socket(server.ws_url, token) as second,
    ):
        long = {"prompt": "Write about the sea.", "maxTokens": 300, "seed": 1}
        op_first = await first.subscribe(WRITE, {"input": long})
        await first.receive(timeout=60)  # started
        op_second = await second.subscribe(
            WRITE, {"input": {"prompt": "Write about hills.", "maxTokens": 5}}
        )
        waiting = events_of(await second.collect(op_second, timeout=120))
        await first.collect(op_first, timeout=120)
    stages = [e["stage"] for e in waiting if e["__typename"] == "Progress"]
    assert "queued (position 1)" in stages, waiting
    kinds = [e["__typename"] for e in waiting]
    assert kinds.index("Progress") < kinds.index("TokenDelta")
    assert_well_formed(waiting)


async def test_a_cancel_stops_the_local_model(settings: Settings) -> None:
    async with (
        serving(settings, engine="local") as (server, graphql, token),
        open_socket(server.ws_url, token) as sock,
    ):
        op = await sock.subscribe(
            WRITE, {"input": {"prompt": "Write a long story.", "maxTokens": 2000}}
        )
        seen: list[dict[str, Any]] = []
        while sum(p["write"]["__typename"] == "TokenDelta" for p in seen) < 3:
            message = await sock.receive(timeout=60)
            seen.append(message["payload"]["data"])
        creation_id = seen[0]["write"]["creationId"]
        cancelled = await graphql.query(CANCEL, {"id": creation_id}, token)
        rest = await sock.collect(op, timeout=60)
    events = events_of(seen + rest)
    assert cancelled["cancelCreation"]["status"] == "CANCELLED"
    assert events[-1]["__typename"] == "CreationCancelled"
    assert 0 < events[-1]["usage"]["completionTokens"] < 2000
    assert_well_formed(events)


async def test_translate_keeps_the_glossary_answer(settings: Settings) -> None:
    async with serving(settings, engine="local") as (_server, graphql, token):
        data = await graphql.query(
            TRANSLATE,
            {"input": {"text": "good morning", "sourceLang": "en", "targetLang": "zh"}},
            token,
        )
    creation = data["translate"]
    assert creation["status"] == "COMPLETED"
    # the local models cannot translate
    assert (creation["model"], creation["modelName"]) == ("dev-engine", "dev-engine")
    assert creation["details"]["translated"] is False
