"""The videoScript tool: scenes with exact timings, shots, voice-over and captions (LONG)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from inference import video
from inference.base import Engine, Piece
from resolvers.tools.base import MAX_SEED, EnumDoc, Mode, Tool, ToolInput

_LIMITS = ", ".join(f"{p.value} {s} s" for p, s in video.PLATFORM_MAX_SECONDS.items())


class VideoScriptInput(ToolInput):
    """The video to script."""

    platform: video.Platform = Field(description="Where the video is published.")
    topic: str = Field(
        min_length=video.MIN_TOPIC_CHARS,
        max_length=video.MAX_TOPIC_CHARS,
        description=f"What the video is about, {video.MIN_TOPIC_CHARS} to "
        f"{video.MAX_TOPIC_CHARS} characters.",
    )
    duration_seconds: int = Field(
        60,
        ge=video.MIN_DURATION_SECONDS,
        le=video.MAX_DURATION_SECONDS,
        description=f"Target length; the scenes add up to it exactly. At least "
        f"{video.MIN_DURATION_SECONDS} s, at most per platform: {_LIMITS}.",
    )
    audience: str | None = Field(
        None, max_length=video.MAX_AUDIENCE_CHARS, description="Who it is for."
    )
    tone: str | None = Field(None, max_length=video.MAX_TONE_CHARS, description="How it sounds.")
    language: str | None = Field(
        None,
        pattern=video.LANGUAGE_PATTERN,
        description="A BCP 47 tag (en, zh-Hans); guessed from the topic when omitted.",
    )
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="For reproducible scripts.")
    max_tokens_per_scene: int = Field(
        video.DEFAULT_SCENE_TOKENS,
        ge=video.MIN_SCENE_TOKENS,
        le=video.MAX_SCENE_TOKENS,
        description=f"Model tokens per scene, {video.MIN_SCENE_TOKENS} to "
        f"{video.MAX_SCENE_TOKENS}.",
    )

    @field_validator("duration_seconds")
    @classmethod
    def _fits_the_platform(cls, seconds: int, info: ValidationInfo) -> int:
        platform = info.data.get("platform")  # absent when the platform itself was invalid
        if platform is not None and seconds > video.PLATFORM_MAX_SECONDS[platform]:
            longest = video.PLATFORM_MAX_SECONDS[platform]
            raise ValueError(f"{platform.value} videos are at most {longest} s")
        return seconds


def _spec(data: Mapping[str, Any]) -> video.VideoSpec:
    return video.VideoSpec(
        platform=video.Platform(data["platform"]),
        topic=data["topic"],
        duration_seconds=data["duration_seconds"],
        audience=data["audience"],
        tone=data["tone"],
        language=data["language"],
        seed=data["seed"],
        max_tokens_per_scene=data["max_tokens_per_scene"],
    )


def _run(
    engine: Engine, data: Mapping[str, Any], model: str, request_id: str
) -> AsyncIterator[Piece]:
    return video.video_script(engine, _spec(data), model=model, request_id=request_id)


def _budget(data: Mapping[str, Any]) -> int:
    return len(video.plan_scenes(_spec(data))) * int(data["max_tokens_per_scene"])


TOOL = Tool(
    name="videoScript",
    description="Video script: a hook, body scenes and a call to action whose start/end "
    "times add up exactly to the target duration, each with a shot, camera note, voice-over "
    "trimmed to the speaking time and on-screen captions; progress per scene; runs on a "
    "worker. Result: the scenes with their timings.",
    mode=Mode.LONG,
    input_model=VideoScriptInput,
    run=_run,
    model_setting="video_model",
    budget=_budget,
    enums={
        video.Platform: EnumDoc(
            "A video platform, with its own pacing, aspect ratio and caption style.",
            {platform: platform.name.replace("_", " ").title() for platform in video.Platform},
            name="VideoPlatform",
        )
    },
)
