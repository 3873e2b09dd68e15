"""The videoScript tool's structured result: the platform's framing and the timed scenes.

Part of the result models of `resolvers.tools.results`; `ENUMS` documents the enums it adds.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from inference import video
from resolvers.tools.base import EnumDoc

_CHARACTER_LANGUAGES = ", ".join(sorted(video.CHARACTER_LANGUAGES))
_SHOTS = ", ".join(f"`{shot}`" for shot in video.CAMERA_NOTES)


class VideoScene(BaseModel):
    """One scene of the script: its timing, shot, visual, voice-over and caption cards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=1, description="The scene's number, from 1.")
    role: video.SceneRole = Field(
        description="HOOK for the first scene, CTA for the last, BODY between (a very short "
        "video has only HOOK and CTA)."
    )
    start: int = Field(ge=0, description="Start, in whole seconds from the video's start.")
    end: int = Field(ge=1, description="End, in whole seconds; the next scene starts here.")
    duration: int = Field(ge=1, description="Seconds on screen: end minus start.")
    shot: str = Field(description=f"The shot type, one of {_SHOTS}.")
    camera: str = Field(description="How to film the shot, a short direction.")
    visual: str = Field(
        description=f"What the viewer sees, from the model, at most {video.MAX_VISUAL_UNITS} "
        "voice units; the camera direction when the model wrote none."
    )
    voice_over: str = Field(
        description="What is said, trimmed to budget; may be empty, except on the CTA scene, "
        "which falls back to a stock call to action."
    )
    captions: list[str] = Field(
        description="On-screen caption cards for the voice-over, in order; a card holds the "
        "platform's caption lines (1 or 2) joined by a newline. Empty with no voice-over."
    )
    words: int = Field(
        ge=0,
        description="Voice units in voiceOver, counted in the result's unit (words, or CJK "
        "characters plus Latin words), despite the name; at most budget.",
    )
    budget: int = Field(
        ge=0, description="The most voice units that fit the scene at the speaking rate."
    )


class VideoScriptResult(BaseModel):
    """A video script: the platform's framing and its timed scenes, hook to call to action."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: video.Platform = Field(
        alias="videoPlatform",
        validation_alias="platform",
        description="The platform whose pacing was used.",
    )
    aspect_ratio: str = Field(description="Frame shape, `9:16` (vertical) or `16:9`.")
    duration_seconds: int = Field(
        alias="videoDurationSeconds",
        validation_alias="duration_seconds",
        ge=video.MIN_DURATION_SECONDS,
        le=video.MAX_DURATION_SECONDS,
        description="The video's length in whole seconds; the scenes add up to it exactly.",
    )
    language: str = Field(
        alias="videoLanguage",
        validation_alias="language",
        description="BCP 47 tag of the voice-over: the one asked for, else guessed from the "
        "topic (ja, zh or en).",
    )
    unit: video.VoiceUnit = Field(description="What the scenes' words and budget count.")
    scenes: list[VideoScene] = Field(
        description=f"The scenes in order, contiguous from 0 s; 2 to {video.MAX_SCENES}."
    )


ENUMS: dict[type[Enum], EnumDoc] = {
    video.SceneRole: EnumDoc(
        "A scene's job in a video script.",
        {
            video.SceneRole.HOOK: "The opening that stops the scroll.",
            video.SceneRole.BODY: "Carries the content, one idea a scene.",
            video.SceneRole.CTA: "The closing call to action.",
        },
        name="VideoSceneRole",
    ),
    video.VoiceUnit: EnumDoc(
        "What a voice-over budget counts.",
        {
            video.VoiceUnit.WORDS: "Words (every language but Chinese and Japanese).",
            video.VoiceUnit.CHARACTERS: "CJK characters, plus any Latin words (Chinese, Japanese).",
        },
        name="VideoVoiceUnit",
    ),
}
"""How the enums of the videoScript result are documented in the schema."""
