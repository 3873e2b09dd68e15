"""The videoScript engine: pacing data, the scene planner, voice-over budgets, captions, stream."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import AsyncIterator, Callable

import pytest

from inference.base import (
    Completion,
    Delta,
    Engine,
    GenerationRequest,
    Piece,
    Stage,
    Structured,
    Usage,
    collect,
    count_tokens,
)
from inference.dev import DevEngine
from inference.video import (
    BODY_SHOTS,
    CAMERA_NOTES,
    CTA_SHOTS,
    HOOK_SHOTS,
    MAX_DURATION_SECONDS,
    MAX_SCENES,
    MAX_TOPIC_CHARS,
    MIN_DURATION_SECONDS,
    PLATFORM_MAX_SECONDS,
    PROFILES,
    VISUAL_TOKENS,
    Platform,
    SceneRole,
    VideoSpec,
    VoiceUnit,
    build_scene_prompt,
    caption_cards,
    caption_lines,
    count_units,
    parse_scene,
    plan_scenes,
    resolve_language,
    scene_lengths,
    text_width,
    trim_voice_over,
    video_script,
    voice_unit,
)

SHORT_FORM = (
    Platform.DOUYIN,
    Platform.TIKTOK,
    Platform.YOUTUBE_SHORTS,
    Platform.INSTAGRAM_REELS,
    Platform.XIAOHONGSHU,
    Platform.WECHAT_CHANNELS,
)
ENGLISH_TEXT = (
    "Most people grind their coffee far too fine. That is why it tastes bitter, "
    "even with good beans. Here is the fix, step by step."
)
CHINESE_TEXT = "我们今天来聊聊咖啡。首先准备器具，然后烧水。"


class ScriptedEngine:
    """A test double that answers every scene with `reply(request)` and records the calls."""

    name = "scripted"

    def __init__(self, reply: Callable[[GenerationRequest], str]) -> None:
        self.reply = reply
        self.requests: list[GenerationRequest] = []
        self.closed = 0

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        self.requests.append(request)
        try:
            for chunk in re.findall(r"\S+\s*", self.reply(request)):
                yield Delta(chunk)
        finally:
            self.closed += 1

    async def complete(self, request: GenerationRequest) -> Completion:
        return await collect(self, request)

    async def aclose(self) -> None:
        pass


async def run(engine: Engine, spec: VideoSpec) -> list[Piece]:
    return [p async for p in video_script(engine, spec, model="m", request_id="r")]


def durations_to_check(platform: Platform) -> list[int]:
    """Every duration the platform allows: the 7 s sweep is a subset, the edges included."""
    return list(range(MIN_DURATION_SECONDS, PLATFORM_MAX_SECONDS[platform] + 1))


# --- pacing data -----------------------------------------------------------------------------


@pytest.mark.parametrize("platform", list(Platform))
def test_every_profile_is_data_the_planner_can_always_satisfy(platform: Platform) -> None:
    profile = PROFILES[platform]
    lo, hi = profile.min_scene_seconds, profile.max_scene_seconds
    assert profile.platform is platform
    assert profile.aspect_ratio in ("9:16", "16:9")
    assert lo <= profile.hook_seconds <= hi and lo <= profile.cta_seconds <= hi
    assert lo <= profile.target_scene_seconds <= hi
    # Any body of at least `lo` seconds splits into whole scenes within [lo, hi] ...
    assert hi >= 2 * lo - 1
    # ... a CTA that absorbs a body too short to stand alone stays within range ...
    assert profile.cta_seconds + lo - 1 <= hi
    # ... and the longest video fits in MAX_SCENES scenes.
    longest = profile.max_duration_seconds
    assert longest <= profile.hook_seconds + profile.cta_seconds + (MAX_SCENES - 2) * hi
    assert MIN_DURATION_SECONDS < longest <= MAX_DURATION_SECONDS
    assert profile.chars_per_second > profile.words_per_second > 2
    assert profile.caption_line_width >= 20 and profile.caption_lines in (1, 2)
    assert profile.cta_style


def test_platform_limits_match_the_formats() -> None:
    assert set(PROFILES) == set(Platform) == set(PLATFORM_MAX_SECONDS)
    assert max(PLATFORM_MAX_SECONDS.values()) == MAX_DURATION_SECONDS
    assert PLATFORM_MAX_SECONDS[Platform.YOUTUBE_SHORTS] <= 180
    assert PLATFORM_MAX_SECONDS[Platform.INSTAGRAM_REELS] <= 180
    assert all(PROFILES[p].aspect_ratio == "9:16" for p in SHORT_FORM)
    assert all(PROFILES[p].hook_seconds == 3 for p in SHORT_FORM)
    assert PROFILES[Platform.YOUTUBE].aspect_ratio == PROFILES[Platform.BILIBILI].aspect_ratio
    assert PROFILES[Platform.YOUTUBE].aspect_ratio == "16:9"
    assert PROFILES[Platform.DOUYIN].chars_per_second == pytest.approx(4.5)
    for shot in {*HOOK_SHOTS, *BODY_SHOTS, *CTA_SHOTS}:
        assert CAMERA_NOTES[shot]


# --- the planner -------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", list(Platform))
def test_plans_add_up_exactly_and_stay_in_range_for_every_duration(platform: Platform) -> None:
    profile = PROFILES[platform]
    lo, hi = profile.min_scene_seconds, profile.max_scene_seconds
    checked = 0
    for total in durations_to_check(platform):
        scenes = plan_scenes(VideoSpec(platform, "coffee at home", total, seed=total))
        lengths = [scene.duration for scene in scenes]
        assert sum(lengths) == total, total
        assert scenes[0].start == 0 and scenes[-1].end == total
        assert all(a.end == b.start for a, b in itertools.pairwise(scenes))
        assert [scene.index for scene in scenes] == list(range(1, len(scenes) + 1))
        assert [scene.role for scene in scenes] == [
            SceneRole.HOOK,
            *[SceneRole.BODY] * (len(scenes) - 2),
            SceneRole.CTA,
        ]
        assert 2 <= len(scenes) <= MAX_SCENES
        assert all(0 < length <= hi for length in lengths)
        if total >= profile.hook_seconds + profile.cta_seconds:
            assert all(length >= lo for length in lengths), (total, lengths)
            assert lengths[0] == profile.hook_seconds
        else:
            # Documented exception: too short for hook + CTA, two scenes share the time.
            assert len(scenes) == 2 and lengths[0] <= profile.hook_seconds
            assert min(lengths) >= 2
        body = lengths[1:-1]
        assert not body or max(body) - min(body) <= 1  # the remainder is spread evenly
        assert all(a.shot != b.shot for a, b in itertools.pairwise(scenes))
        checked += 1
    assert checked == PLATFORM_MAX_SECONDS[platform] - MIN_DURATION_SECONDS + 1


def test_body_scenes_follow_the_target_length_and_the_scene_cap() -> None:
    tiktok = PROFILES[Platform.TIKTOK]
    assert scene_lengths(30, tiktok) == [3, 4, 4, 4, 4, 4, 4, 3]
    douyin = scene_lengths(60, PROFILES[Platform.DOUYIN])
    assert douyin[0] == douyin[-1] == 3 and sorted(set(douyin[1:-1])) == [4, 5]
    assert len(douyin) == 2 + round(54 / 5)
    # 30 minutes of YouTube would be 149 body scenes at the target: capped, longer scenes.
    longest = scene_lengths(1_800, PROFILES[Platform.YOUTUBE])
    assert len(longest) == MAX_SCENES and sum(longest) == 1_800
    assert min(longest[1:-1]) > PROFILES[Platform.YOUTUBE].target_scene_seconds


def test_short_totals_fall_back_to_a_hook_and_a_cta() -> None:
    youtube = PROFILES[Platform.YOUTUBE]
    assert scene_lengths(5, PROFILES[Platform.DOUYIN]) == [3, 2]
    assert scene_lengths(8, PROFILES[Platform.DOUYIN]) == [3, 5]  # no room for a body scene
    assert scene_lengths(9, PROFILES[Platform.DOUYIN]) == [3, 3, 3]
    assert scene_lengths(5, youtube) == [3, 2]
    assert scene_lengths(12, youtube) == [6, 6]
    assert scene_lengths(18, youtube) == [8, 10]
    assert scene_lengths(21, youtube) == [8, 5, 8]


def test_shots_rotate_with_the_seed_and_plans_are_reproducible() -> None:
    def shots(seed: int) -> list[str]:
        return [
            s.shot for s in plan_scenes(VideoSpec(Platform.TIKTOK, "desk setup", 60, seed=seed))
        ]

    assert shots(1) == shots(1)
    assert shots(1) != shots(2)
    plan = plan_scenes(VideoSpec(Platform.TIKTOK, "desk setup", 60, seed=1))
    assert plan[0].shot in HOOK_SHOTS and plan[-1].shot in CTA_SHOTS
    assert all(scene.shot in BODY_SHOTS for scene in plan[1:-1])
    assert plan[0].camera.startswith("cut in on the action")
    assert plan[1].camera == CAMERA_NOTES[plan[1].shot]


# --- voice-over budgets ------------------------------------------------------------------------


def test_language_picks_the_voice_unit_and_the_speaking_rate() -> None:
    english = VideoSpec(Platform.DOUYIN, "pour-over coffee", 30)
    chinese = VideoSpec(Platform.DOUYIN, "在家做手冲咖啡", 30)
    japanese = VideoSpec(Platform.DOUYIN, "コーヒーの淹れ方", 30)
    assert [resolve_language(s) for s in (english, chinese, japanese)] == ["en", "zh", "ja"]
    assert resolve_language(VideoSpec(Platform.DOUYIN, "在家做手冲咖啡", 30, language="en")) == "en"
    assert (
        voice_unit("zh-Hans") is VoiceUnit.CHARACTERS and voice_unit("ja") is VoiceUnit.CHARACTERS
    )
    assert voice_unit("en-US") is VoiceUnit.WORDS and voice_unit("ko") is VoiceUnit.WORDS
    # A 3 s hook at 2.8 words/s or 4.5 characters/s; a 4 s body scene at each rate.
    assert [s.budget for s in plan_scenes(english)[:2]] == [8, 11]
    assert [s.budget for s in plan_scenes(chinese)[:2]] == [13, 18]
    for scene in plan_scenes(chinese):
        assert scene.budget == math.floor(scene.duration * 4.5 + 1e-9)


def test_units_count_words_and_cjk_characters() -> None:
    assert count_units("Don't stop, 2 cats!") == 4
    assert count_units(CHINESE_TEXT) == 19
    assert count_units("用iPhone拍视频") == 5
    assert count_units("— … ！") == 0


def test_trimming_english_cuts_at_words_and_prefers_sentence_ends() -> None:
    text = "One two three four five. Six seven eight nine ten eleven."
    assert trim_voice_over(text, 8) == "One two three four five."
    assert trim_voice_over(text, 4) == "One two three four…"
    assert trim_voice_over("Alpha beta, gamma delta", 2) == "Alpha beta…"
    assert trim_voice_over(text, 11) == text
    assert trim_voice_over("  spaced\n  out  ", 5) == "spaced out"
    assert trim_voice_over(text, 0) == ""


def test_trimming_chinese_counts_characters() -> None:
    assert trim_voice_over(CHINESE_TEXT, 10) == "我们今天来聊聊咖啡。"
    assert trim_voice_over(CHINESE_TEXT, 17) == "我们今天来聊聊咖啡。"
    assert trim_voice_over(CHINESE_TEXT, 19) == CHINESE_TEXT
    assert trim_voice_over("首先准备器具然后烧水", 4) == "首先准备…"
    assert trim_voice_over("首先准备器具，然后烧水", 6) == "首先准备器具…"


@pytest.mark.parametrize("text", [ENGLISH_TEXT, CHINESE_TEXT, ENGLISH_TEXT + " " + CHINESE_TEXT])
def test_trimmed_text_fits_every_budget_and_is_a_prefix(text: str) -> None:
    flat = " ".join(text.split())
    for budget in range(count_units(text) + 2):
        trimmed = trim_voice_over(text, budget)
        assert count_units(trimmed) <= budget
        assert flat.startswith(trimmed.removesuffix("…"))
        if budget >= count_units(text):
            assert trimmed == flat
        elif budget:
            assert count_units(trimmed) * 2 >= budget  # never drops more than half the budget


# --- captions ----------------------------------------------------------------------------------


def test_caption_lines_respect_the_width_and_cjk_counts_double() -> None:
    assert text_width("ab你好") == 6
    english = caption_lines(ENGLISH_TEXT, 20)
    assert all(text_width(line) <= 20 for line in english)
    assert " ".join(english).split() == ENGLISH_TEXT.split()
    chinese = caption_lines(CHINESE_TEXT, 10)
    assert chinese == ["我们今天来", "聊聊咖啡。", "首先准备器", "具，然后烧", "水。"]
    # Closing punctuation stays with what it closes, opening punctuation with what it opens.
    assert caption_lines("我们今天。来", 8) == ["我们今", "天。来"]
    assert caption_lines("看看“这个”", 5) == ["看看", "“这", "个”"]
    url = "https://example.com/a/very/long/path"
    assert all(len(line) <= 10 for line in caption_lines(url, 10))
    assert "".join(caption_lines(url, 10)) == url


@pytest.mark.parametrize("platform", list(Platform))
@pytest.mark.parametrize("text", [ENGLISH_TEXT, CHINESE_TEXT * 3])
def test_caption_cards_fit_the_profile_and_keep_every_character(
    platform: Platform, text: str
) -> None:
    profile = PROFILES[platform]
    cards = caption_cards(text, profile)
    assert cards
    for card in cards:
        lines = card.split("\n")
        assert 1 <= len(lines) <= profile.caption_lines
        assert all(0 < text_width(line) <= profile.caption_line_width for line in lines)
        assert not any(re.match(r"[，。！？、”]", line) for line in lines)
        assert not any(line.endswith(("“", "（")) for line in lines)
    assert re.sub(r"\s", "", "".join(cards)) == re.sub(r"\s", "", text)


def test_a_new_sentence_starts_a_new_card() -> None:
    cards = caption_cards("Short one. Another short one.", PROFILES[Platform.YOUTUBE])
    assert cards == ["Short one.", "Another short one."]


# --- the model's text --------------------------------------------------------------------------


def test_parse_scene_reads_labels_in_english_and_chinese_with_fallbacks() -> None:
    english = parse_scene("Scene 2\nVisual: a cup on a scale\nVoice-over: Weigh it.\nEvery time.")
    assert english.visual == "a cup on a scale" and english.voice_over == "Weigh it. Every time."
    bold = parse_scene("**Visual:** beans\n**Voice-over**: Start here.")
    assert (bold.visual, bold.voice_over) == ("beans", "Start here.")
    chinese = parse_scene("画面：手冲壶特写\n旁白：水温九十度。")
    assert (chinese.visual, chinese.voice_over) == ("手冲壶特写", "水温九十度。")
    plain = parse_scene("A kettle pours. Watch the bloom. It matters.")
    assert (plain.visual, plain.voice_over) == ("A kettle pours.", "Watch the bloom. It matters.")
    assert parse_scene("Only one sentence here.").visual == ""


def test_scene_prompt_ends_with_the_topic_and_states_the_budget() -> None:
    spec = VideoSpec(Platform.TIKTOK, "  desk\nsetup  ", 30, audience="students", tone="calm")
    scenes = plan_scenes(spec)
    prompt = build_scene_prompt(spec, scenes[-1], len(scenes), language="en", previous="Hi.")
    assert prompt.splitlines()[-1] == "desk setup"
    assert f"at most {scenes[-1].budget} words" in prompt
    assert PROFILES[Platform.TIKTOK].cta_style in prompt
    assert "Audience: students" in prompt and "Tone: calm" in prompt
    assert 'The narrator said before: "Hi."' in prompt and "in English>" in prompt


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"topic": "ab"}, "topic"),
        ({"topic": "x" * (MAX_TOPIC_CHARS + 1)}, "topic"),
        ({"duration_seconds": MIN_DURATION_SECONDS - 1}, "duration_seconds"),
        ({"platform": Platform.YOUTUBE_SHORTS, "duration_seconds": 181}, "duration_seconds"),
        ({"language": "english please"}, "language"),
        ({"language": "en\n"}, "language"),
        ({"platform": "myspace"}, "platform"),
        ({"max_tokens_per_scene": 8}, "max_tokens_per_scene"),
        ({"audience": "a" * 201}, "audience"),
    ],
)
def test_spec_refuses_values_outside_the_limits(changes: dict[str, object], field: str) -> None:
    values: dict[str, object] = {"platform": Platform.DOUYIN, "topic": "coffee"} | changes
    with pytest.raises(ValueError, match=f"^{field}:"):
        VideoSpec(**values)  # type: ignore[arg-type]


def test_spec_accepts_the_edges() -> None:
    VideoSpec(Platform.YOUTUBE_SHORTS, "abc", PLATFORM_MAX_SECONDS[Platform.YOUTUBE_SHORTS])
    VideoSpec(Platform.YOUTUBE, "x" * MAX_TOPIC_CHARS, MAX_DURATION_SECONDS, language="zh-Hans")


# --- the stream --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        VideoSpec(Platform.YOUTUBE_SHORTS, "pour-over coffee at home", 47, seed=7),
        VideoSpec(Platform.DOUYIN, "在家做一杯手冲咖啡", 30, seed=3, max_tokens_per_scene=40),
        VideoSpec(Platform.BILIBILI, "机械键盘入门", 14),
    ],
)
async def test_video_script_streams_the_plan_then_each_scene(spec: VideoSpec) -> None:
    plan = plan_scenes(spec)
    n = len(plan)
    pieces = await run(DevEngine(token_delay=0), spec)

    # Order: planning, the plan, then per scene Stage, Usage, header, model text, block.
    assert pieces[0] == Stage(0.0, "planning")
    first_scene = next(i for i, p in enumerate(pieces) if isinstance(p, Stage) and i > 0)
    plan_text = pieces[1:first_scene]
    assert plan_text and all(isinstance(p, Delta) and p.tokens == 0 for p in plan_text)
    assert pieces[-2] == Stage(1.0, "done") and isinstance(pieces[-1], Structured)
    stages = [p for p in pieces if isinstance(p, Stage)]
    assert [s.name for s in stages] == [
        "planning",
        *[f"scene {i}/{n}" for i in range(1, n + 1)],
        "done",
    ]
    fractions = [s.fraction for s in stages]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(a < b for a, b in itertools.pairwise(fractions))

    scene_starts = [i for i, p in enumerate(pieces) if isinstance(p, Stage)][1:-1]
    structured = pieces[-1]
    assert isinstance(structured, Structured)
    scenes = structured.data["scenes"]
    assert isinstance(scenes, list) and len(scenes) == n
    ends = [*scene_starts[1:], len(pieces) - 2]
    for planned, result, start, end in zip(plan, scenes, scene_starts, ends, strict=True):
        segment = pieces[start:end]
        usage, header, *model, block = segment[1:]
        assert isinstance(usage, Usage) and usage.prompt_tokens > 0
        assert isinstance(header, Delta) and header.tokens == 0
        assert f"Scene {planned.index}/{n}" in header.text
        expected_tokens = min(spec.max_tokens_per_scene, VISUAL_TOKENS + 2 * planned.budget)
        assert all(isinstance(p, Delta) and p.tokens == 1 for p in model)
        assert len(model) == expected_tokens
        assert isinstance(block, Delta) and block.tokens == 0
        # The structured scene agrees with the plan and with the text block.
        assert {k: result[k] for k in ("index", "start", "end", "duration", "shot", "camera")} == {
            "index": planned.index,
            "start": planned.start,
            "end": planned.end,
            "duration": planned.duration,
            "shot": planned.shot,
            "camera": planned.camera,
        }
        assert result["role"] == planned.role.value and result["budget"] == planned.budget
        voice_over = result["voice_over"]
        assert isinstance(voice_over, str) and voice_over in block.text
        assert 0 < result["words"] == count_units(voice_over) <= planned.budget
        assert result["captions"] == caption_cards(voice_over, PROFILES[spec.platform])
        assert result["visual"]

    data = json.loads(json.dumps(structured.data))
    assert data["platform"] == spec.platform.value
    assert data["aspect_ratio"] == PROFILES[spec.platform].aspect_ratio
    assert data["duration_seconds"] == spec.duration_seconds
    assert sum(scene["duration"] for scene in data["scenes"]) == spec.duration_seconds
    assert data["unit"] == voice_unit(data["language"]).value


async def test_video_script_is_reproducible_for_a_retry() -> None:
    spec = VideoSpec(Platform.TIKTOK, "three desk stretches", 20, seed=11)
    first, again = (
        await run(DevEngine(token_delay=0), spec),
        await run(DevEngine(token_delay=0), spec),
    )
    assert first == again
    other = await run(DevEngine(token_delay=0), VideoSpec(Platform.TIKTOK, "desk stretches", 20))
    assert first[-1] != other[-1]


async def test_the_model_voice_over_is_trimmed_and_the_cta_falls_back() -> None:
    long_english = " ".join(["Stretch your neck slowly."] * 30)

    def reply(request: GenerationRequest) -> str:
        if "Close with a call to action" in request.prompt:
            return "Visual: a wave goodbye\nVoice-over:"
        return f"Visual: a person at a desk\nVoice-over: {long_english}"

    engine = ScriptedEngine(reply)
    spec = VideoSpec(Platform.INSTAGRAM_REELS, "desk stretches", 24, seed=4, audience="office")
    pieces = await run(engine, spec)
    structured = pieces[-1]
    assert isinstance(structured, Structured)
    scenes = structured.data["scenes"]
    assert isinstance(scenes, list)
    plan = plan_scenes(spec)
    for planned, scene in zip(plan[:-1], scenes[:-1], strict=True):
        assert scene["visual"] == "a person at a desk"
        assert scene["voice_over"].startswith("Stretch your neck slowly.")
        assert count_units(scene["voice_over"]) <= planned.budget < count_units(long_english)
    assert scenes[-1]["voice_over"] == "Follow for more."
    # One request per scene, each with its own id, seed and budget-bound token allowance.
    assert [r.request_id for r in engine.requests] == [f"r:{s.index}" for s in plan]
    assert [r.seed for r in engine.requests] == [4 + s.index for s in plan]
    assert [r.max_tokens for r in engine.requests] == [
        min(spec.max_tokens_per_scene, VISUAL_TOKENS + 2 * s.budget) for s in plan
    ]
    assert f'The narrator said before: "{scenes[0]["voice_over"]}"' in engine.requests[1].prompt
    usages = [p for p in pieces if isinstance(p, Usage)]
    assert [u.prompt_tokens for u in usages] == [count_tokens(r.prompt) for r in engine.requests]


async def test_closing_the_script_closes_the_model_stream() -> None:
    engine = ScriptedEngine(lambda request: "Visual: x\nVoice-over: one two three four five")
    pieces = video_script(
        engine, VideoSpec(Platform.TIKTOK, "stretches", 30), model="m", request_id="r"
    )
    async for piece in pieces:
        if isinstance(piece, Delta) and piece.tokens:
            break
    assert engine.closed == 0
    await pieces.aclose()  # type: ignore[attr-defined]
    assert engine.closed == 1 and len(engine.requests) == 1
