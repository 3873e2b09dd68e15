"""The dev engine and the tools' engines, without GraphQL."""

from __future__ import annotations

from inference.base import Delta, GenerationRequest, Stage, Usage, count_tokens
from inference.dev import DevEngine
from inference.report import DEFAULT_SECTIONS, ReportSpec, parse_outline, report
from inference.write import Genre, WriteSpec, build_prompt, write


def request(
    prompt: str = "a quiet harbor", seed: int | None = 1, tokens: int = 50
) -> GenerationRequest:
    return GenerationRequest(request_id="r", model="m", prompt=prompt, max_tokens=tokens, seed=seed)


async def test_dev_engine_is_deterministic_and_exact_in_length() -> None:
    engine = DevEngine(token_delay=0)
    first = await engine.complete(request())
    again = await engine.complete(request())
    other_seed = await engine.complete(request(seed=2))
    other_prompt = await engine.complete(request(prompt="mountain snow"))
    assert first.text == again.text
    assert first.text not in (other_seed.text, other_prompt.text)
    assert first.usage.completion_tokens == 50 == len(first.text.split())
    assert first.text.endswith(".") and first.text[0].isupper()
    assert engine.name == "dev-engine"


async def test_dev_engine_uses_the_request_words() -> None:
    text = (await DevEngine(token_delay=0).complete(request("zebra lighthouse", tokens=200))).text
    assert "zebra" in text.lower() and "lighthouse" in text.lower()


def test_count_tokens_handles_words_punctuation_and_cjk() -> None:
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("你好世界") == 4
    assert count_tokens("") == 0


async def test_write_sends_the_genre_guide_and_reports_prompt_usage() -> None:
    spec = WriteSpec(prompt="autumn", genre=Genre.POEM, max_tokens=10, seed=3)
    prompt = build_prompt(spec)
    assert prompt.startswith("Write a short poem") and prompt.endswith("about this:\nautumn")
    pieces = [p async for p in write(DevEngine(token_delay=0), spec, model="m", request_id="r")]
    assert pieces[0] == Usage(prompt_tokens=count_tokens(build_prompt(spec)))
    assert sum(p.tokens for p in pieces if isinstance(p, Delta)) == 10


def test_outline_parsing_takes_numbered_lines_and_pads() -> None:
    text = "Intro text\n1. Market size\n2) Key players\n- Risks ahead\n* Risks ahead\nnot a line"
    assert parse_outline(text, 3) == ["Market size", "Key players", "Risks ahead"]
    assert parse_outline(text, 5) == [
        "Market size",
        "Key players",
        "Risks ahead",
        *DEFAULT_SECTIONS[:2],
    ]
    assert parse_outline("", 2) == list(DEFAULT_SECTIONS[:2])


async def test_report_streams_an_outline_then_sections_with_progress() -> None:
    spec = ReportSpec(topic="urban gardens", sections=3, section_tokens=20, seed=5)
    pieces = [p async for p in report(DevEngine(token_delay=0), spec, model="m", request_id="r")]
    stages = [p for p in pieces if isinstance(p, Stage)]
    assert [s.name.split(":")[0] for s in stages] == [
        "outline",
        "section 1/3",
        "section 2/3",
        "section 3/3",
        "done",
    ]
    assert [s.fraction for s in stages] == [0.0, 0.25, 0.5, 0.75, 1.0]
    text = "".join(p.text for p in pieces if isinstance(p, Delta))
    assert text.startswith("# urban gardens\n") and text.count("\n## ") == 3
    generated = sum(p.tokens for p in pieces if isinstance(p, Delta))
    outline_usage = next(p for p in pieces if isinstance(p, Usage))
    assert generated == 3 * 20
    assert outline_usage.completion_tokens == 16 * 3
