"""Personal data never reaches a model, and comes back in what the owner reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from inference.base import Completion, Delta, GenerationRequest, Piece, Structured, Usage
from resolvers.guard.inputs import mask, restored
from resolvers.storage.objects import LocalStore
from resolvers.tools import get_tool
from tests.conftest import TEST_SECRET, GraphQLClient

EMAIL = "li.wei@example.com"
PHONE = "13800138000"


class EchoEngine:
    """Repeats the prompt back in small pieces, and remembers every prompt it was sent."""

    name = "echo"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        self.prompts.append(request.prompt)
        for start in range(0, len(request.prompt), 3):  # splits placeholders mid-way
            yield Delta(request.prompt[start : start + 3])

    async def complete(self, request: GenerationRequest) -> Completion:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


async def run(tool: str, payload: dict[str, object], tmp_path: Path) -> tuple[str, EchoEngine]:
    engine = EchoEngine()
    chosen = get_tool(tool)
    data = chosen.parse(payload)
    store = LocalStore(tmp_path, secret=TEST_SECRET)
    text = ""
    async for piece in chosen.pieces(engine, data, "m", "r1", store):
        if isinstance(piece, Delta):
            text += piece.text
    return text, engine


async def test_the_model_sees_placeholders_and_the_owner_the_values(tmp_path: Path) -> None:
    prompt = f"Write to {EMAIL} or call {PHONE} about the launch."
    text, engine = await run("write", {"prompt": prompt, "max_tokens": 300}, tmp_path)
    sent = "".join(engine.prompts)
    assert EMAIL not in sent and PHONE not in sent
    assert "[EMAIL_1]" in sent and "[PHONE_1]" in sent
    assert EMAIL in text and PHONE in text and "[EMAIL_1]" not in text


async def test_list_fields_and_structured_results_are_restored(tmp_path: Path) -> None:
    facts = [f"Support answers at {EMAIL} within an hour", "Prices rose 20%"]
    masked = mask({"subject": "our shop", "facts": facts, "template_id": None})
    assert masked.data["facts"][0] == "Support answers at [EMAIL_1] within an hour"
    assert facts[0].endswith("within an hour") and EMAIL in facts[0]  # the caller's list kept
    assert masked.found == [
        {"field": "facts.0", "kind": "EMAIL", "placeholder": "[EMAIL_1]", "count": 1}
    ]

    async def pieces() -> AsyncIterator[Piece]:
        yield Usage(prompt_tokens=3)
        yield Delta("[EMA")
        yield Delta("IL_1] wrote")
        yield Structured({"strengths": [{"item": "fast replies via [EMAIL_1]"}]})

    out = [piece async for piece in restored(pieces(), masked.vault)]
    text = "".join(p.text for p in out if isinstance(p, Delta))
    assert text == f"{EMAIL} wrote"
    result = next(p for p in out if isinstance(p, Structured))
    assert result.data == {"strengths": [{"item": f"fast replies via {EMAIL}"}]}


async def test_ids_and_media_are_never_touched() -> None:
    data = {"lexicon_id": "10.0.0.1", "image_base64": "aGVsbG8=", "text": "call 10.0.0.1"}
    masked = mask(data)
    assert masked.data["lexicon_id"] == "10.0.0.1" and masked.data["text"] == "call [IP_1]"


async def test_the_creation_records_what_was_masked_not_the_values(
    client: GraphQLClient, token: str
) -> None:
    query = """
    mutation W($p: String!) { write(input: {prompt: $p, maxTokens: 20}, wait: true) {
      ... on Creation { input masked { field kind placeholder count } } } }
    """
    created = (await client.query(query, {"p": f"Mail {EMAIL} twice: {EMAIL}"}, token))["write"]
    assert created["masked"] == [
        {"field": "prompt", "kind": "EMAIL", "placeholder": "[EMAIL_1]", "count": 2}
    ]
    assert created["input"]["prompt"].count(EMAIL) == 2  # the owner's input is kept as given
