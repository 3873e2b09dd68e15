"""The videoScript tool's engine: a rule-based scene plan, then each scene streamed.

The planner splits the target duration into a hook, body scenes and a call to action, paced
by the platform's profile (data, not branches). The model writes each scene's visual and
voice-over; post-processing trims the voice-over to what fits the scene at the profile's
speaking rate (words per second, or characters per second for Chinese and Japanese) and
breaks it into on-screen caption cards within the profile's line width (CJK counts double).
The request and the scene plan live in `video_plan`, the pacing profiles in `video_profile`,
the text fitting in `text_fit`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from inference.base import (
    Delta,
    Engine,
    GenerationRequest,
    Piece,
    Stage,
    Structured,
    Usage,
    count_tokens,
    relayed,
)
from inference.language import LANGUAGES
from inference.text_fit import (
    SENTENCE_END,
    caption_lines,
    count_units,
    text_width,
    trim_voice_over,
)
from inference.video_plan import (
    BODY_SHOTS,
    CAMERA_NOTES,
    CHARACTER_LANGUAGES,
    CTA_SHOTS,
    DEFAULT_SCENE_TOKENS,
    HOOK_SHOTS,
    LANGUAGE_PATTERN,
    MAX_AUDIENCE_CHARS,
    MAX_DURATION_SECONDS,
    MAX_SCENE_TOKENS,
    MAX_SCENES,
    MAX_TONE_CHARS,
    MAX_TOPIC_CHARS,
    MIN_DURATION_SECONDS,
    MIN_SCENE_TOKENS,
    MIN_TOPIC_CHARS,
    ScenePlan,
    SceneRole,
    VideoSpec,
    plan_scenes,
    resolve_language,
    scene_lengths,
    voice_budget,
    voice_unit,
)
from inference.video_profile import (
    PLATFORM_MAX_SECONDS,
    PROFILES,
    PacingProfile,
    Platform,
    VoiceUnit,
)

__all__ = [
    "BODY_SHOTS",
    "CAMERA_NOTES",
    "CHARACTER_LANGUAGES",
    "CTA_SHOTS",
    "DEFAULT_SCENE_TOKENS",
    "HOOK_SHOTS",
    "LANGUAGE_PATTERN",
    "MAX_AUDIENCE_CHARS",
    "MAX_DURATION_SECONDS",
    "MAX_SCENES",
    "MAX_SCENE_TOKENS",
    "MAX_TONE_CHARS",
    "MAX_TOPIC_CHARS",
    "MAX_VISUAL_UNITS",
    "MIN_DURATION_SECONDS",
    "MIN_SCENE_TOKENS",
    "MIN_TOPIC_CHARS",
    "PLATFORM_MAX_SECONDS",
    "PROFILES",
    "VISUAL_TOKENS",
    "PacingProfile",
    "Platform",
    "ScenePlan",
    "SceneRole",
    "SceneText",
    "VideoSpec",
    "VoiceUnit",
    "build_scene_prompt",
    "caption_cards",
    "caption_lines",
    "count_units",
    "parse_scene",
    "plan_scenes",
    "resolve_language",
    "scene_lengths",
    "text_width",
    "trim_voice_over",
    "video_script",
    "voice_budget",
    "voice_unit",
]

# A scene's model allowance: room for the visual line plus about two tokens per voice unit.
VISUAL_TOKENS = 48
MAX_VISUAL_UNITS = 40


_ROLE_GUIDES = {
    SceneRole.HOOK: "Open with a hook that stops the scroll: a bold claim, a question or a "
    "striking image. No greeting, no logo.",
    SceneRole.BODY: "Deliver one idea of the topic; show it rather than only saying it.",
    SceneRole.CTA: "Close with a call to action: {cta}.",
}
_CTA_FALLBACK = {VoiceUnit.WORDS: "Follow for more.", VoiceUnit.CHARACTERS: "关注我，下期见。"}

_LABEL = re.compile(
    r"^[\s*#>_-]*(visual|shot|画面|镜头|voice[\s-]?over|vo|narration|旁白|口播|配音)"
    r"[\s*_]*[:：][\s*_]*(.*)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SceneText:
    """What the model wrote for a scene, split into its visual and its voice-over."""

    visual: str
    voice_over: str


def caption_cards(text: str, profile: PacingProfile) -> list[str]:
    """On-screen caption cards for `text`: up to `caption_lines` lines each, joined by '\\n';
    a new sentence starts a new card, as subtitles do."""
    text = " ".join(text.split())
    cuts = [match.end() for match in SENTENCE_END.finditer(text)]
    cards: list[str] = []
    for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True):
        lines = caption_lines(text[start:end], profile.caption_line_width)
        size = profile.caption_lines
        cards.extend("\n".join(lines[i : i + size]) for i in range(0, len(lines), size))
    return cards


def parse_scene(text: str) -> SceneText:
    """The visual and voice-over from 'Visual:' / 'Voice-over:' lines (or 画面/旁白);
    without labels, the first sentence is the visual and the rest the voice-over."""
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = _LABEL.match(line)
        if match:
            label = match.group(1).lower()
            key = "visual" if label in ("visual", "shot", "画面", "镜头") else "voice"
            current = fields.setdefault(key, [])
            current.append(match.group(2))
        elif current is not None:
            current.append(line)
    if fields:
        return SceneText(
            " ".join(" ".join(fields.get("visual", [])).split()),
            " ".join(" ".join(fields.get("voice", [])).split()),
        )
    flat = " ".join(text.split())
    first = SENTENCE_END.search(flat)
    if first is None or not flat[first.end() :].strip():
        return SceneText("", flat)
    return SceneText(flat[: first.end()], flat[first.end() :].strip())


def build_scene_prompt(
    spec: VideoSpec, scene: ScenePlan, total: int, *, language: str, previous: str = ""
) -> str:
    """The model prompt for one scene: the scene's plan, the answer's form, then the topic on
    the last line."""
    profile = PROFILES[spec.platform]
    unit = voice_unit(language)
    spoken = LANGUAGES.get(language.split("-", maxsplit=1)[0], language)
    lines = [
        f"Write scene {scene.index} of {total} of a {profile.label} video script "
        f"({profile.aspect_ratio}, {spec.duration_seconds} s in all) about the topic below.",
        f"This scene: {scene.role}, {scene.start}-{scene.end} s, {scene.shot}; "
        f"camera: {scene.camera}. " + _ROLE_GUIDES[scene.role].format(cta=profile.cta_style),
        "Answer in exactly two lines:",
        "Visual: <what the viewer sees>",
        f"Voice-over: <what the narrator says, at most {scene.budget} {unit}, in {spoken}>",
    ]
    if spec.audience:
        lines.append(f"Audience: {' '.join(spec.audience.split())}")
    if spec.tone:
        lines.append(f"Tone: {' '.join(spec.tone.split())}")
    if previous:
        lines.append(f'The narrator said before: "{previous}"')
    lines += ["The topic:", " ".join(spec.topic.split())]
    return "\n".join(lines)


def _clock(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


def _plan_text(spec: VideoSpec, scenes: list[ScenePlan], unit: VoiceUnit) -> list[str]:
    profile = PROFILES[spec.platform]
    rate = profile.speaking_rate(unit)
    lines = [
        f"# {' '.join(spec.topic.split())}\n",
        f"{profile.label} · {profile.aspect_ratio} · {spec.duration_seconds} s · "
        f"{len(scenes)} scenes · voice-over at {rate:g} {unit}/s\n\n",
    ]
    for scene in scenes:
        lines.append(
            f"{scene.index}. {_clock(scene.start)}-{_clock(scene.end)} {scene.role} · "
            f"{scene.shot} · ≤ {scene.budget} {unit}\n"
        )
    return lines


def _scene_block(scene: ScenePlan, voice_over: str, cards: list[str], unit: VoiceUnit) -> str:
    lines = [f"\n\nVoice-over ({count_units(voice_over)}/{scene.budget} {unit}): {voice_over}"]
    lines.append("Captions:")
    lines.extend(f"  {n}. {card.replace(chr(10), ' / ')}" for n, card in enumerate(cards, 1))
    return "\n".join(lines) + "\n"


async def video_script(
    engine: Engine, spec: VideoSpec, *, model: str, request_id: str
) -> AsyncIterator[Piece]:
    """The plan, then one streamed generation per scene, each followed by its trimmed
    voice-over and captions; progress before each step and a structured result at the end."""
    profile = PROFILES[spec.platform]
    language = resolve_language(spec)
    unit = voice_unit(language)
    yield Stage(0.0, "planning")
    scenes = plan_scenes(spec)
    for line in _plan_text(spec, scenes, unit):
        yield Delta(line, tokens=0)
    results: list[dict[str, object]] = []
    previous = ""
    for scene in scenes:
        yield Stage(scene.index / (len(scenes) + 1), f"scene {scene.index}/{len(scenes)}")
        prompt = build_scene_prompt(spec, scene, len(scenes), language=language, previous=previous)
        yield Usage(prompt_tokens=count_tokens(prompt))
        yield Delta(
            f"\n## Scene {scene.index}/{len(scenes)} · {scene.role} · "
            f"{_clock(scene.start)}-{_clock(scene.end)} · {scene.shot}\n",
            tokens=0,
        )
        request = GenerationRequest(
            request_id=f"{request_id}:{scene.index}",
            model=model,
            prompt=prompt,
            max_tokens=min(spec.max_tokens_per_scene, VISUAL_TOKENS + 2 * scene.budget),
            temperature=0.7,
            seed=None if spec.seed is None else spec.seed + scene.index,
        )
        parts: list[str] = []
        async with relayed(engine, request, parts) as deltas:
            async for delta in deltas:
                yield delta
        written = parse_scene("".join(parts))
        voice_over = trim_voice_over(written.voice_over, scene.budget)
        if not voice_over and scene.role is SceneRole.CTA:
            voice_over = trim_voice_over(_CTA_FALLBACK[unit], scene.budget)
        cards = caption_cards(voice_over, profile)
        yield Delta(_scene_block(scene, voice_over, cards, unit), tokens=0)
        results.append(
            {
                "index": scene.index,
                "role": str(scene.role),
                "start": scene.start,
                "end": scene.end,
                "duration": scene.duration,
                "shot": scene.shot,
                "camera": scene.camera,
                "visual": trim_voice_over(written.visual, MAX_VISUAL_UNITS) or scene.camera,
                "voice_over": voice_over,
                "captions": cards,
                "words": count_units(voice_over),
                "budget": scene.budget,
            }
        )
        previous = voice_over
    yield Stage(1.0, "done")
    yield Structured(
        {
            "platform": str(spec.platform),
            "aspect_ratio": profile.aspect_ratio,
            "duration_seconds": spec.duration_seconds,
            "language": language,
            "unit": str(unit),
            "scenes": results,
        }
    )
