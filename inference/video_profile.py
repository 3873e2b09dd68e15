"""Video platforms' pacing profiles: framing, scene lengths, speaking rate and captions.

One `PacingProfile` per `Platform` (data, not branches); the scene planner and the caption
cards of the videoScript tool read everything platform-specific from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


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
