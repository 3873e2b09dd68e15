"""A real browser (Debian's chromium via playwright-core): a page on another origin, GraphiQL.

Screenshots are kept in tests/clients/artifacts/ (git-ignored); their paths are printed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.clients.conftest import run_node
from tests.conftest import GraphQLClient, Server

pytestmark = [pytest.mark.services, pytest.mark.clients]


async def test_a_page_on_another_origin_signs_in_and_renders_a_stream(
    api: Server,
    page_origin: str,
    chromium: str,
    artifact: Callable[[str], Path],
) -> None:
    screenshot = artifact("browser-cross-origin-page.png")
    result = await run_node(
        "browser.mjs",
        "page",
        env={
            "CK_URL": api.url,
            "CK_PAGE_URL": f"{page_origin}/index.html",
            "CK_SCREENSHOT": str(screenshot),
            "CK_CHROMIUM": chromium,
        },
    )
    print(f"screenshot: {screenshot}")
    shown = result["steps"]["stream"]
    # what the page shows: the concatenated deltas, then the terminal event and the output
    assert shown["text"] and shown["text"] == "".join(shown["deltas"])
    assert shown["terminal"] == "CreationCompleted" and shown["status"] == "COMPLETED"
    assert shown["output"] == shown["text"]
    assert shown["events"][0] == "CreationStarted" and shown["events"][-1] == "CreationCompleted"
    assert screenshot.stat().st_size > 0


async def test_graphiql_from_the_app_runs_a_subscription(
    api: Server, chromium: str, node_modules: Path, artifact: Callable[[str], Path]
) -> None:
    graphql = GraphQLClient(api.url)
    try:
        token = await graphql.register()
    finally:
        await graphql.aclose()
    screenshot = artifact("browser-graphiql.png")
    result = await run_node(
        "browser.mjs",
        "graphiql",
        env={
            "CK_URL": api.url,
            "CK_TOKEN": token,
            "CK_SCREENSHOT": str(screenshot),
            "CK_CHROMIUM": chromium,
        },
    )
    print(f"screenshot: {screenshot}")
    shown = result["steps"]["run subscription"]
    assert {"TokenDelta", "CreationCompleted"} <= set(shown["typenames"])
    assert len(shown["seqs"]) >= 2
    assert screenshot.stat().st_size > 0
