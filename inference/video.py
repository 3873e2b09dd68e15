"""The videoScript tool's engine: a rule-based scene plan, then each scene streamed.

The planner splits the target duration into a hook, body scenes and a call to action, paced
by the platform's profile (data, not branches). The model writes each scene's visual and
voice-over; post-processing trims the voice-over to what fits the scene at the profile's
speaking rate (words per second, or characters per second for Chinese and Japanese) and
breaks it into on-screen caption cards within the profile's line width (CJK counts double).
"""

from __future__ import annotations

import bisect
import math
import re
import unicodedata
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from inference.base import (
    Delta,
    Engine,
    GenerationRequest,
    Piece,
    Stage,
    Structured,
    Usage,
    count_tokens,
)

MIN_TOPIC_CHARS = 3
MAX_TOPIC_CHARS = 500
MAX_AUDIENCE_CHARS = 200
MAX_TONE_CHARS = 100
MIN_DURATION_SECONDS = 5
MAX_DURATION_SECONDS = 1_800  # the longest any platform profile allows (YouTube, Bilibili)
MIN_SCENE_TOKENS = 32
MAX_SCENE_TOKENS = 1_024
DEFAULT_SCENE_TOKENS = 160
MAX_SCENES = 100  # hook + body + CTA; every profile's maximum duration fits within it
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$"  # a BCP 47 tag: en, zh-Hans
CHARACTER_LANGUAGES = frozenset({"zh", "ja", "yue"})  # voice-over timed in characters
# A scene's model allowance: room for the visual line plus about two tokens per voice unit.
VISUAL_TOKENS = 48
MAX_VISUAL_UNITS = 40


class Platform(StrEnum):
    """Where the video is published; each has its own pacing profile."""

    DOUYIN = "douyin"
    XIAOHONGSHU = "xiaohongshu"
    BILIBILI = "bilibili"
    YOUTUBE = "youtube"
    YOUTUBE_SHORTS = "youtube_shorts"
    TIKTOK = "tiktok"
    INSTAGRAM_REELS = "instagram_reels"
    WECHAT_CHANNELS = "wechat_channels"


class SceneRole(StrEnum):
    """A scene's job: stop the scroll, carry the content, or ask for the action."""

    HOOK = "hook"
    BODY = "body"
    CTA = "cta"


class VoiceUnit(StrEnum):
    """What a voice-over budget counts: words, or CJK characters (plus embedded Latin words)."""

    WORDS = "words"
    CHARACTERS = "characters"


@dataclass(frozen=True)
class PacingProfile:
    """A platform's pacing: framing, scene lengths, speaking rate, captions, CTA habits.

    Scene lengths are whole seconds; `caption_line_width` is in columns, where a Latin
    character takes one and a CJK (full-width) character two.
    """

    platform: Platform
    label: str
    aspect_ratio: str
    max_duration_seconds: int
    hook_seconds: int
    cta_seconds: int
    min_scene_seconds: int
    target_scene_seconds: int
    max_scene_seconds: int
    words_per_second: float
    chars_per_second: float
    caption_line_width: int
    caption_lines: int
    cta_style: str

    def speaking_rate(self, unit: VoiceUnit) -> float:
        """Voice units per second for `unit`."""
        return self.chars_per_second if unit is VoiceUnit.CHARACTERS else self.words_per_second


# The maxima are what this tool plans for, at or below each platform's upload limit. Columns:
# platform, label, aspect ratio, max duration, hook s, CTA s, scene min / target / max s,
# words/s, characters/s, caption line width (columns), caption lines, CTA style.
_PROFILES = (
    PacingProfile(
        Platform.DOUYIN, "Douyin", "9:16", 900, 3, 3, 3, 5, 10, 2.8, 4.5, 28, 2,
        "ask to follow and like, and pose a question for the comments",
    ),
    PacingProfile(
        Platform.XIAOHONGSHU, "Xiaohongshu", "9:16", 900, 3, 4, 3, 6, 12, 2.5, 4.0, 26, 2,
        "ask viewers to save the note for later and share their own experience in the comments",
    ),
    PacingProfile(
        Platform.BILIBILI, "Bilibili", "16:9", 1_800, 6, 6, 5, 10, 20, 2.6, 4.2, 40, 1,
        "ask for the triple (like, coin, favourite) and a follow for the next episode",
    ),
    PacingProfile(
        Platform.YOUTUBE, "YouTube", "16:9", 1_800, 8, 8, 5, 12, 25, 2.5, 4.0, 42, 2,
        "ask to subscribe and point to the next video on the end screen",
    ),
    PacingProfile(
        Platform.YOUTUBE_SHORTS, "YouTube Shorts", "9:16", 180, 3, 3, 3, 5, 8, 2.7, 4.3, 32, 2,
        "ask to subscribe, and end on a line that loops back into the opening",
    ),
    PacingProfile(
        Platform.TIKTOK, "TikTok", "9:16", 600, 3, 3, 3, 4, 8, 2.9, 4.5, 32, 2,
        "ask to follow for part two and to answer a question in the comments",
    ),
    PacingProfile(
        Platform.INSTAGRAM_REELS, "Instagram Reels", "9:16", 180, 3, 3, 3, 5, 8, 2.6, 4.2, 32, 2,
        "ask to save and share the reel, and point to the link in bio",
    ),
    PacingProfile(
        Platform.WECHAT_CHANNELS, "WeChat Channels", "9:16", 600, 3, 4, 3, 6, 12, 2.5, 4.0, 28, 2,
        "ask to like and forward to friends, and to follow the account",
    ),
)  # fmt: skip
PROFILES: Mapping[Platform, PacingProfile] = MappingProxyType({p.platform: p for p in _PROFILES})
PLATFORM_MAX_SECONDS: Mapping[Platform, int] = MappingProxyType(
    {p.platform: p.max_duration_seconds for p in _PROFILES}
)

# Shot rotations by role (offset by the seed); no shot repeats in two adjacent scenes.
HOOK_SHOTS = ("close-up", "talking head", "extreme close-up")
BODY_SHOTS = (
    "medium",
    "B-roll",
    "screen recording",
    "wide",
    "close-up",
    "product shot",
    "talking head",
    "over-the-shoulder",
)
CTA_SHOTS = ("talking head", "medium", "product shot")
_ROTATIONS = {SceneRole.HOOK: HOOK_SHOTS, SceneRole.BODY: BODY_SHOTS, SceneRole.CTA: CTA_SHOTS}
CAMERA_NOTES: Mapping[str, str] = MappingProxyType(
    {
        "extreme close-up": "macro detail filling the frame, rack focus onto the subject",
        "close-up": "face or object fills the frame, slow push-in",
        "talking head": "eye level, eyes on the upper third, speaking to the lens",
        "medium": "waist-up, locked off or gentle handheld",
        "wide": "establish the setting with a slow pan",
        "B-roll": "two or three cutaways of 1-2 s each, cut on the voice-over's beats",
        "screen recording": "crop to the area in use, zoom in on each click",
        "product shot": "clean background, slow orbit around the product, end on the detail",
        "over-the-shoulder": "from behind the subject toward the screen or the work",
    }
)
_ROLE_GUIDES = {
    SceneRole.HOOK: "Open with a hook that stops the scroll: a bold claim, a question or a "
    "striking image. No greeting, no logo.",
    SceneRole.BODY: "Deliver one idea of the topic; show it rather than only saying it.",
    SceneRole.CTA: "Close with a call to action: {cta}.",
}
_CTA_FALLBACK = {VoiceUnit.WORDS: "Follow for more.", VoiceUnit.CHARACTERS: "关注我，下期见。"}

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_KANA = re.compile(r"[\u3040-\u30ff]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# A voice unit: one CJK character, or one run of other letters and digits (a word).
_UNIT = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+(?:['’][^\W_{_CJK}]+)*")
_ENDING = "。！？…"
_CLOSING = f".!?,;:)]\"'{_ENDING}，；：、’”）」』》"
_GLUED = re.compile(rf"[{re.escape(_CLOSING)}]*")
_SENTENCE_END = re.compile(rf"[.!?{_ENDING}]+[\"'’”）」』]*(?=\s|$|[{_CJK}])")
_DANGLING = " ,;:，；：、-—"
_PUNCT = "\u3000-\u303f\uff00-\uffef"
_ATOM = re.compile(rf"\s+|[{_CJK}]|[{_PUNCT}]|[^\s{_CJK}{_PUNCT}]+")
_OPENING = set("(['\"‘“（「『《")
_LABEL = re.compile(
    r"^[\s*#>_-]*(visual|shot|画面|镜头|voice[\s-]?over|vo|narration|旁白|口播|配音)"
    r"[\s*_]*[:：][\s*_]*(.*)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class VideoSpec:
    """A validated videoScript request; limits are the module's constants."""

    platform: Platform
    topic: str
    duration_seconds: int = 60
    audience: str | None = None
    tone: str | None = None
    language: str | None = None
    seed: int | None = None
    max_tokens_per_scene: int = DEFAULT_SCENE_TOKENS

    def __post_init__(self) -> None:
        if self.platform not in PROFILES:
            raise ValueError(f"platform: must be one of {', '.join(Platform)}")
        longest = PROFILES[self.platform].max_duration_seconds
        ranges = {
            "topic": (len(self.topic.strip()), MIN_TOPIC_CHARS, MAX_TOPIC_CHARS),
            "duration_seconds": (self.duration_seconds, MIN_DURATION_SECONDS, longest),
            "audience": (len(self.audience or ""), 0, MAX_AUDIENCE_CHARS),
            "tone": (len(self.tone or ""), 0, MAX_TONE_CHARS),
            "max_tokens_per_scene": (self.max_tokens_per_scene, MIN_SCENE_TOKENS, MAX_SCENE_TOKENS),
        }
        for name, (value, low, high) in ranges.items():
            if not low <= value <= high:
                raise ValueError(f"{name}: must be {low}-{high}, not {value}")
        if self.language is not None and not re.fullmatch(LANGUAGE_PATTERN, self.language):
            raise ValueError("language: must be a BCP 47 tag such as en or zh-Hans")


@dataclass(frozen=True)
class ScenePlan:
    """One planned scene: role, timing in whole seconds, shot, camera and voice budget."""

    index: int
    role: SceneRole
    start: int
    end: int
    shot: str
    camera: str
    budget: int

    @property
    def duration(self) -> int:
        """Seconds on screen."""
        return self.end - self.start


@dataclass(frozen=True)
class SceneText:
    """What the model wrote for a scene, split into its visual and its voice-over."""

    visual: str
    voice_over: str


def resolve_language(spec: VideoSpec) -> str:
    """The spec's language, else guessed from the topic's script: ja, zh, or en."""
    if spec.language:
        return spec.language
    if _KANA.search(spec.topic):
        return "ja"
    return "zh" if _HAN.search(spec.topic) else "en"


def voice_unit(language: str) -> VoiceUnit:
    """Characters for Chinese and Japanese, words for every other language."""
    primary = language.split("-", 1)[0].lower()
    return VoiceUnit.CHARACTERS if primary in CHARACTER_LANGUAGES else VoiceUnit.WORDS


def voice_budget(seconds: float, rate: float) -> int:
    """The most voice units that fit in `seconds` at `rate` units per second."""
    return max(0, math.floor(seconds * rate + 1e-9))


def scene_lengths(total: int, profile: PacingProfile) -> list[int]:
    """Whole-second scene lengths adding up to `total`: hook, body scenes, CTA.

    Every length is within the profile's scene range, except when `total` is shorter than
    hook plus CTA: then two scenes split it, the hook at most `hook_seconds`.
    """
    hook, cta = profile.hook_seconds, profile.cta_seconds
    if total < hook + cta:
        closing = max(total - hook, total // 2)
        return [total - closing, closing]
    if total < hook + cta + profile.min_scene_seconds:
        return [hook, total - hook]  # no room for a body scene: the CTA takes the rest
    body = total - hook - cta
    fewest = -(-body // profile.max_scene_seconds)
    most = min(body // profile.min_scene_seconds, MAX_SCENES - 2)
    count = max(fewest, min(max(1, round(body / profile.target_scene_seconds)), most))
    base, extra = divmod(body, count)
    # Spread the remainder's extra seconds evenly over the body, not all at its start.
    spread = [(i + 1) * extra // count - i * extra // count for i in range(count)]
    return [hook, *(base + bonus for bonus in spread), cta]


def plan_scenes(spec: VideoSpec) -> list[ScenePlan]:
    """The scene plan: contiguous from 0, durations adding up exactly to the target."""
    profile = PROFILES[spec.platform]
    rate = profile.speaking_rate(voice_unit(resolve_language(spec)))
    lengths = scene_lengths(spec.duration_seconds, profile)
    offset = spec.seed or 0
    scenes: list[ScenePlan] = []
    start, previous = 0, ""
    for index, length in enumerate(lengths, start=1):
        role = SceneRole.BODY
        if index in (1, len(lengths)):
            role = SceneRole.HOOK if index == 1 else SceneRole.CTA
        rotation = _ROTATIONS[role]
        turn = offset + index
        shot = rotation[turn % len(rotation)]
        if shot == previous:
            shot = rotation[(turn + 1) % len(rotation)]
        camera = CAMERA_NOTES[shot]
        if role is SceneRole.HOOK:
            camera = f"cut in on the action, no intro card; {camera}"
        scenes.append(
            ScenePlan(index, role, start, start + length, shot, camera, voice_budget(length, rate))
        )
        start, previous = start + length, shot
    return scenes


def count_units(text: str) -> int:
    """Voice units in `text`: words, with each CJK character counted as one."""
    return len(_UNIT.findall(text))


def trim_voice_over(text: str, budget: int) -> str:
    """`text` cut to at most `budget` voice units at a word (or CJK character) boundary.

    A sentence end in the second half of the budget is preferred; a cut inside a sentence
    drops dangling punctuation and ends with an ellipsis.
    """
    text = " ".join(text.split())
    units = list(_UNIT.finditer(text))
    if len(units) <= budget:
        return text
    if budget <= 0:
        return ""
    cut = units[budget - 1].end()
    glued = _GLUED.match(text, cut)
    cut = glued.end() if glued else cut
    sentence_ends = list(_SENTENCE_END.finditer(text, 0, cut))
    if sentence_ends:
        last = sentence_ends[-1]
        kept = bisect.bisect_right([unit.end() for unit in units], last.start())
        if kept * 2 >= budget:
            return text[: last.end()]
    return text[:cut].rstrip(_DANGLING) + "…"


def text_width(text: str) -> int:
    """Display columns: two for a wide (CJK, full-width) character, one for the rest."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def caption_lines(text: str, width: int) -> list[str]:
    """`text` broken into lines of at most `width` columns, between words or CJK characters;
    closing punctuation stays on the line it closes, opening punctuation moves down."""
    atoms: list[str] = []
    for atom in _ATOM.findall(" ".join(text.split())):
        glue = atoms and not atom.isspace() and not atoms[-1].isspace()
        if glue and (all(ch in _CLOSING for ch in atom) or all(ch in _OPENING for ch in atoms[-1])):
            atoms[-1] += atom
        else:
            atoms.append(atom)
    lines: list[str] = []
    line, space = "", False
    for atom in atoms:
        if atom.isspace():
            space = bool(line)
            continue
        joined = f"{line} {atom}" if space else line + atom
        if text_width(joined) <= width:
            line = joined
        else:
            if line:
                lines.append(line)
            line = ""
            for ch in atom:  # a word wider than a whole line is broken hard
                if line and text_width(line + ch) > width:
                    lines.append(line)
                    line = ""
                line += ch
        space = False
    if line:
        lines.append(line)
    return lines


def caption_cards(text: str, profile: PacingProfile) -> list[str]:
    """On-screen caption cards for `text`: up to `caption_lines` lines each, joined by '\\n';
    a new sentence starts a new card, as subtitles do."""
    text = " ".join(text.split())
    cuts = [match.end() for match in _SENTENCE_END.finditer(text)]
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
    first = _SENTENCE_END.search(flat)
    if first is None or not flat[first.end() :].strip():
        return SceneText("", flat)
    return SceneText(flat[: first.end()], flat[first.end() :].strip())


def build_scene_prompt(
    spec: VideoSpec, scene: ScenePlan, total: int, *, language: str, previous: str = ""
) -> str:
    """The model prompt for one scene; the topic is its last line."""
    profile = PROFILES[spec.platform]
    unit = voice_unit(language)
    lines = [
        f"Write scene {scene.index} of {total} of a {profile.label} video script "
        f"({profile.aspect_ratio}, {spec.duration_seconds} s in all).",
        f"This scene: {scene.role}, {scene.start}-{scene.end} s, {scene.shot}; "
        f"camera: {scene.camera}.",
        _ROLE_GUIDES[scene.role].format(cta=profile.cta_style),
        "Answer in two lines: 'Visual: <what the viewer sees>' and "
        f"'Voice-over: <at most {scene.budget} {unit} in language {language}>'.",
    ]
    if spec.audience:
        lines.append(f"Audience: {' '.join(spec.audience.split())}")
    if spec.tone:
        lines.append(f"Tone: {' '.join(spec.tone.split())}")
    if previous:
        lines.append(f"The previous scene said: {previous}")
    lines.append(" ".join(spec.topic.split()))
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
        stream = engine.stream(request)
        try:
            async for delta in stream:
                parts.append(delta.text)
                yield delta
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()  # a cancelled script stops the model's request too
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
