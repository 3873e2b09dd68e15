"""pytest plugin: one real Triton server (PyTriton, CPU) per test session.

Register it with `pytest_plugins = ["tests.triton.plugin"]`. Without `.venv-triton` the
tests that use `triton_url` skip, or fail when `CK_REQUIRE_SERVICES=1` (CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.triton.harness import TritonStartError, start_triton, triton_available

REPO_ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    """Register the `triton` marker, so the plugin also works outside this repo's config."""
    config.addinivalue_line("markers", "triton: needs the local Triton server (nvidia-pytriton)")


@pytest.fixture(scope="session")
def triton_url() -> Iterator[str]:
    """gRPC "host:port" of a Triton server serving the test models (tests/triton/server.py)."""
    reason = triton_available(REPO_ROOT)
    if reason is not None:
        if os.environ.get("CK_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Triton is required (CK_REQUIRE_SERVICES=1) but unavailable: {reason}")
        pytest.skip(f"Triton unavailable: {reason}")
    try:
        server = start_triton(REPO_ROOT)
    except TritonStartError as exc:
        # The venv exists, so a server that will not start is a bug to see, not to skip.
        pytest.fail(str(exc))
    with server:
        yield server.url
