"""graphql-codegen types the live schema and our operations; tsc checks the result."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.conftest import run_node
from tests.conftest import Server

pytestmark = [pytest.mark.services, pytest.mark.clients]


async def test_codegen_types_the_live_schema_and_tsc_accepts_them(
    api: Server, node_modules: Path, tmp_path: Path
) -> None:
    result = await run_node("codegen.mjs", env={"CK_URL": api.url, "CK_OUT_DIR": str(tmp_path)})
    steps = result["steps"]
    assert {"deprecated", "specifiedBy", "oneOf"} <= set(steps["introspection"]["directives"])
    assert (tmp_path / "operations.ts").exists() and (tmp_path / "schema-types.ts").exists()
    assert steps["typecheck"]["checked"] == ["schema-types.ts", "operations.ts", "usage.ts"]
