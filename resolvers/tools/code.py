"""The code tool: code in a chosen language, the fenced block extracted and checked (FAST)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import Field

from inference import code
from inference.base import Engine, Piece
from resolvers.tools.base import MAX_SEED, EnumDoc, Mode, Tool, ToolInput


class CodeInput(ToolInput):
    """The code to write."""

    language: code.Language = Field(description="The programming language to write in.")
    task: str = Field(
        min_length=code.MIN_TASK_CHARS,
        max_length=code.MAX_TASK_CHARS,
        description=f"What the code must do, 1 to {code.MAX_TASK_CHARS:,} characters.",
    )
    context: str = Field(
        "",
        max_length=code.MAX_CONTEXT_CHARS,
        description=f"Existing code to build on, up to {code.MAX_CONTEXT_CHARS:,} characters.",
    )
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="For reproducible output.")
    max_tokens: int = Field(
        code.DEFAULT_MAX_TOKENS, ge=16, le=8_192, description="Length limit, 16 to 8192 tokens."
    )


def _spec(data: Mapping[str, Any]) -> code.CodeSpec:
    return code.CodeSpec(
        language=code.Language(data["language"]),
        task=data["task"],
        context=data["context"],
        seed=data["seed"],
        max_tokens=data["max_tokens"],
    )


def _run(
    engine: Engine, data: Mapping[str, Any], model: str, request_id: str
) -> AsyncIterator[Piece]:
    return code.code(engine, _spec(data), model=model, request_id=request_id)


TOOL = Tool(
    name="code",
    description="Code generation (DeepSeek-Coder in production) in one of 15 languages, "
    "streamed; the fenced block is extracted and its language checked (Python is also "
    "parsed). Result: language, code, blocks, language_check, detected_language, syntax_ok.",
    mode=Mode.FAST,
    input_model=CodeInput,
    run=_run,
    model_setting="code_model",
    check=_spec,
    enums={
        code.Language: EnumDoc(
            "A programming language.",
            {language: language.value for language in code.Language},
            name="CodeLanguage",
        )
    },
)
