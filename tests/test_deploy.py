"""docker-compose.yml, checked offline (no Docker engine here): services, order, settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from resolvers.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_runs_migrations_before_the_api_and_worker() -> None:
    services = compose()["services"]
    assert set(services) >= {"postgres", "redis", "migrate", "api", "worker"}
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["command"] == ["creation-king", "worker"]


def test_compose_sets_only_settings_the_code_reads() -> None:
    known = {f"CK_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose()["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("CK_"):
                assert variable in known, f"{name}: {variable} is not a setting"
    environment = compose()["services"]["api"]["environment"]
    assert ":?" in environment["CK_JWT_SECRET"]  # refuses to start without a secret
