"""The socialPost tool: platform style transfer with each platform's rules enforced (FAST)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import Field

from inference import social
from inference.base import Engine, Piece
from resolvers.tools.base import MAX_SEED, EnumDoc, Mode, Tool, ToolInput

_TAG = f"at most {social.MAX_TAGS}, each 1 to {social.MAX_TAG_CHARS} characters"


class SocialPostInput(ToolInput):
    """The post to write and the platform to style it for."""

    platform: social.Platform = Field(description="Where the post goes; sets every rule.")
    topic: str = Field(
        min_length=1,
        max_length=social.MAX_TOPIC_CHARS,
        description=f"What the post is about, 1 to {social.MAX_TOPIC_CHARS:,} characters.",
    )
    keywords: list[str] = Field(
        default_factory=list,
        max_length=social.MAX_TAGS,
        description=f"Words to work in ({_TAG}); also used for hashtags.",
    )
    hashtags: list[str] = Field(
        default_factory=list,
        max_length=social.MAX_TAGS,
        description=f"Hashtags to include first ({_TAG}), without '#'; rendered in the "
        "platform's syntax (#tag# on Weibo and Xiaohongshu, #tag elsewhere).",
    )
    title: str | None = Field(
        None,
        max_length=social.MAX_TITLE_CHARS,
        description="A title for platforms that use one; cut to the platform's limit "
        "(Xiaohongshu 20 characters).",
    )
    tone: str | None = Field(
        None, max_length=social.MAX_TONE_CHARS, description="Overrides the platform's tone."
    )
    language: str | None = Field(
        None, max_length=social.MAX_LANGUAGE_CHARS, description="Overrides its usual language."
    )
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="For a reproducible draft.")
    max_tokens: int | None = Field(
        None,
        ge=16,
        le=social.MAX_DRAFT_TOKENS,
        description=f"Draft length in model tokens, 16 to {social.MAX_DRAFT_TOKENS}; "
        "the platform's usual length when omitted.",
    )


def _spec(data: Mapping[str, Any]) -> social.SocialSpec:
    return social.SocialSpec(
        platform=social.Platform(data["platform"]),
        topic=data["topic"],
        keywords=tuple(data["keywords"]),
        hashtags=tuple(data["hashtags"]),
        title=data["title"],
        tone=data["tone"],
        language=data["language"],
        seed=data["seed"],
        max_tokens=data["max_tokens"],
    )


def _run(
    engine: Engine, data: Mapping[str, Any], model: str, request_id: str
) -> AsyncIterator[Piece]:
    return social.social_post(engine, _spec(data), model=model, request_id=request_id)


TOOL = Tool(
    name="socialPost",
    description="Social post styled for a platform (Xiaohongshu, Weibo, Zhihu, Douyin, WeChat, "
    "X, LinkedIn, Instagram): its length limit and counting, title rule, hashtag syntax and "
    "count, emoji habit and tone, with the platform's LoRA adapter. The draft streams; the "
    "final post always fits. Result: title, body, hashtags, text, length, limit, truncated.",
    mode=Mode.FAST,
    input_model=SocialPostInput,
    run=_run,
    model_setting="social_model",
    check=_spec,
    enums={
        social.Platform: EnumDoc(
            "A social platform and its style profile.",
            {platform: social.PROFILES[platform].display_name for platform in social.Platform},
            name="SocialPlatform",
        )
    },
)
