"""The videoScript request and its rule-based scene plan.

`plan_scenes` splits the target duration into a hook, body scenes and a call to action within
the platform profile's scene lengths, rotates the shots by role (offset by the seed) and gives
each scene a voice-over budget at the profile's speaking rate. No model is involved.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from inference.video_profile import PROFILES, PacingProfile, Platform, VoiceUnit

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


class SceneRole(StrEnum):
    """A scene's job: stop the scroll, carry the content, or ask for the action."""

    HOOK = "hook"
    BODY = "body"
    CTA = "cta"


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

_KANA = re.compile(r"[\u3040-\u30ff]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


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
