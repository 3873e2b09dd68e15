"""The tool catalog and the inputs of each tool."""

from __future__ import annotations

from enum import Enum

import strawberry

from resolvers import tools


@strawberry.enum(description="Where a tool runs.")
class ToolMode(Enum):
    FAST = strawberry.enum_value(
        "FAST", description="Streams from the API process; `wait: true` returns it finished."
    )
    LONG = strawberry.enum_value(
        "LONG", description="Queued on a worker; follow it with Subscription.creationEvents."
    )


@strawberry.type(description="A creation tool.")
class Tool:
    name: str = strawberry.field(
        description="The tool's name; also its Mutation and Subscription field name."
    )
    description: str = strawberry.field(description="What the tool makes.")
    mode: ToolMode = strawberry.field(description="Where it runs.")

    @classmethod
    def from_tool(cls, tool: tools.Tool) -> Tool:
        return cls(name=tool.name, description=tool.description, mode=ToolMode(tool.mode.value))
