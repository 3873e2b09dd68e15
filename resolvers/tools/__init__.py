"""The tool registry: every creation tool, in the order the schema lists them.

The GraphQL schema (its inputs, mutations and subscriptions), `Query.tools`, the runner and
the worker all read this registry. Adding a tool: its engine in `inference/`, one module here
with its input model and `TOOL`, its name in `_MODULES`, its result model (if it makes
one) in `results.py`, and its tests.
"""

from __future__ import annotations

import importlib

from resolvers.core.errors import InvalidInput
from resolvers.guard.inputs import Masking
from resolvers.tools.base import MAX_SEED, EnumDoc, Mode, Tool, ToolInput, check_text

_MODULES = (
    "write",
    "translate",
    "code",
    "social",
    "swot",
    "tarot",
    "caption",
    "transcribe",
    "report",
    "video",
)

TOOLS: dict[str, Tool] = {}
for _module in _MODULES:
    _tool: Tool = importlib.import_module(f"{__name__}.{_module}").TOOL
    TOOLS[_tool.name] = _tool


def get_tool(name: str) -> Tool:
    """The registered tool called `name`."""
    try:
        return TOOLS[name]
    except KeyError:
        raise InvalidInput(f"unknown tool {name!r}", field="tool") from None


# `Masking`: the masked input a tool's `pieces` may be handed (resolvers.guard makes it).
__all__ = [
    "MAX_SEED",
    "TOOLS",
    "EnumDoc",
    "Masking",
    "Mode",
    "Tool",
    "ToolInput",
    "check_text",
    "get_tool",
]
