"""docker-compose.yml, the Dockerfile and .dockerignore, checked offline (no Docker engine here).

The compose file is validated against the Compose Specification's JSON schema, as shipped by
check-jsonschema (`check_jsonschema/builtin_schemas/vendor/compose-spec.json`, vendored there
from compose-spec/compose-spec `schema/compose-spec.json`). The settings, commands, routes
and ports the files name are checked against the code. tests/test_k8s.py reuses the helpers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import tomllib
import typing
from collections.abc import Callable, Iterator, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from jobs.worker import create_worker
from resolvers.core.settings import Settings
from schema import cli
from schema.app import create_app

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
APP_SERVICES = ("migrate", "api", "worker")
# Values for the variables compose requires (`${VAR:?...}`), as an operator's .env would set.
OPERATOR_ENV = {"CK_JWT_SECRET": "j" * 48, "CK_S3_SECRET_ACCESS_KEY": "s" * 16}
_PARSE_ARGS = argparse.ArgumentParser.parse_args  # before any test patches it


# --- helpers shared with tests/test_k8s.py ------------------------------------------------


def settings_from_env(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> Settings:
    """Settings as a process whose environment holds exactly `env` (of the CK_* settings)."""
    for name in Settings.model_fields:
        monkeypatch.delenv(f"CK_{name.upper()}", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def _sample(annotation: Any) -> str:
    """A valid environment value for an optional setting of this type."""
    kinds = set(typing.get_args(annotation) or (annotation,)) - {type(None)}
    if kinds & {int, float}:
        return "1"
    if bool in kinds:
        return "false"
    return "sample-" + "x" * 40  # str, SecretStr, Path: long enough for any length check


def required_settings(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Settings a production process cannot start without, found by asking Settings itself:
    those with no default, and those whose absence the production validator refuses."""
    fields = Settings.model_fields
    required = {name for name, field in fields.items() if field.is_required()}
    optional = [name for name, field in fields.items() if field.default is None]
    complete = {"CK_ENV": "production"} | {
        f"CK_{name.upper()}": _sample(fields[name].annotation) for name in [*required, *optional]
    }
    settings_from_env(monkeypatch, complete)  # everything given: accepted
    for name in optional:
        without = {key: value for key, value in complete.items() if key != f"CK_{name.upper()}"}
        try:
            settings_from_env(monkeypatch, without)
        except ValidationError:
            required.add(name)
    return required


def run_cli(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> tuple[str, argparse.Namespace]:
    """The `creation-king` subcommand that `argv` (a container command) runs, and its parsed
    arguments; argparse exits (and the test fails) on an unknown command or option."""
    assert argv[0] in PYPROJECT["project"]["scripts"], f"{argv[0]} is not a console script"
    parsed: list[argparse.Namespace] = []

    def parse_args(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        namespace = _PARSE_ARGS(self, *args, **kwargs)
        parsed.append(argparse.Namespace(**vars(namespace)))
        namespace.run = lambda _args: None  # parse, never run
        return namespace

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    monkeypatch.setattr(logging, "basicConfig", lambda **_: None)
    cli.main(argv[1:])
    (namespace,) = parsed
    run: Callable[..., None] = namespace.run
    return run.__name__.removeprefix("_").replace("_", "-"), namespace


def app_routes() -> set[str]:
    """The paths the API serves (schema/app.py)."""
    app = create_app(Settings(env="test"))
    return {str(getattr(route, "path", "")) for route in app.routes}


async def worker_shutdown() -> tuple[int, int]:
    """(seconds the worker lets running jobs finish on SIGTERM, the job timeout), read from
    the arq Worker that `creation-king worker` builds (jobs/worker.py)."""
    worker = create_worker(
        Settings(env="test", redis_url="redis://127.0.0.1:1/0"), handle_signals=False
    )
    timeouts = [int(function.timeout_s or 0) for function in worker.functions.values()]
    return int(worker._job_completion_wait), max(timeouts)


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def image_user() -> int:
    """The numeric user the image runs as (its last USER)."""
    users = [arguments for instruction, arguments in dockerfile() if instruction == "USER"]
    return int(users[-1].split(":")[0])


# --- docker-compose.yml ---------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` (and `$$`), for the tests."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        present = variables.get(name)
        if operator and operator.startswith(":") and not present:
            present = None
        if present is not None:
            return present
        if operator and operator.endswith("?"):
            raise KeyError(f"{name}: {argument}")
        return argument if operator else ""

    return _VARIABLE.sub(substitute, value).replace("$$", "$")


def service_env(service: Mapping[str, Any], variables: Mapping[str, str]) -> dict[str, str]:
    return {
        key: interpolate(str(value), variables) for key, value in service["environment"].items()
    }


def compose_schema() -> dict[str, Any]:
    vendor = files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


def schema_errors(document: Mapping[str, Any]) -> list[str]:
    schema = compose_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_compose_follows_the_compose_specification() -> None:
    assert schema_errors(compose()) == []
    # The schema does bite: a misspelt key is an error.
    broken = compose()
    broken["services"]["api"]["depend_on"] = broken["services"]["api"].pop("depends_on")
    assert schema_errors(broken)


def test_compose_runs_migrations_before_the_api_and_worker() -> None:
    services = compose()["services"]
    assert set(services) >= {"postgres", "redis", "minio", "bucket", "migrate", "api", "worker"}
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["bucket"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["command"] == ["creation-king", "worker"]


def test_compose_waits_only_on_what_can_report_it() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for target, dependency in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            if dependency["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            else:  # one-off jobs: done once they exit 0
                assert dependency["condition"] == "service_completed_successfully"
                assert services[target].get("restart") == "no", f"{target} is not one-off"


def test_compose_sets_only_settings_the_code_reads() -> None:
    known = {f"CK_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose()["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("CK_"):
                assert variable in known, f"{name}: {variable} is not a setting"


def test_compose_gives_the_app_every_setting_production_requires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    required = required_settings(monkeypatch)
    assert required >= {"jwt_secret", "database_url", "redis_url", "s3_bucket"}
    services = compose()["services"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        missing = {f"CK_{setting.upper()}" for setting in required} - set(environment)
        assert not missing, f"{name} lacks {missing}"
        # With the operator's two variables the app starts, with production's checks...
        settings = settings_from_env(monkeypatch, service_env(services[name], OPERATOR_ENV))
        assert settings.env == "production"
        # ...and it uses the dev engine until CK_TRITON_URL is set.
        assert settings.engine_kind == "dev"


def test_compose_refuses_to_start_without_the_secrets() -> None:
    services = compose()["services"]
    for variable in OPERATOR_ENV:
        variables = {key: value for key, value in OPERATOR_ENV.items() if key != variable}
        with pytest.raises(KeyError, match=variable):
            service_env(services["api"], variables)
    assert ":?" in services["api"]["environment"]["CK_JWT_SECRET"]


def test_compose_commands_ports_and_healthcheck_match_the_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = compose()["services"]
    expected = {"migrate": "migrate", "api": "serve", "worker": "worker"}
    for name, subcommand in expected.items():
        assert services[name]["image"] == "creation-king:latest"
        assert services[name]["build"] == "."
        command, _args = run_cli(monkeypatch, services[name]["command"])
        assert command == subcommand
    _command, args = run_cli(monkeypatch, services["api"]["command"])
    assert services["api"]["ports"] == [f"{args.port}:{args.port}"]
    probe = " ".join(services["api"]["healthcheck"]["test"])
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", probe)
    assert url is not None
    assert int(url.group(1)) == args.port
    assert url.group(2) in app_routes()


async def test_compose_worker_stop_grace_covers_the_drain() -> None:
    drain, _timeout = await worker_shutdown()
    grace = compose()["services"]["worker"]["stop_grace_period"]
    assert int(grace.removesuffix("s")) >= drain + 30


def _triton_flags(service: Mapping[str, Any]) -> dict[str, str]:
    return dict(
        argument.removeprefix("--").split("=", 1)
        for argument in service["command"]
        if argument.startswith("--")
    )


def test_compose_triton_runs_only_on_request() -> None:
    data = compose()
    services = data["services"]
    gpu, cpu = services["triton"], services["triton-cpu"]
    assert gpu["profiles"] == ["gpu"]
    assert cpu["profiles"] == ["triton-cpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "deploy" not in cpu  # starts on a machine without a GPU
    for service in (gpu, cpu):
        assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3", service["image"])
        flags = _triton_flags(service)
        assert flags["model-control-mode"] == "explicit"
        (volume,) = service["volumes"]
        source, target, mode = volume.rsplit(":", 2)
        assert source == "${TRITON_MODEL_REPOSITORY:-./model_repository}"
        assert (target, mode) == (flags["model-repository"], "ro")
        probe = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{flags['http-port']}/v2/health/ready" in probe
        # Both answer as `triton`: the CK_TRITON_URL the header documents.
        assert "triton" in service["networks"]["default"]["aliases"]
        assert (
            f"CK_TRITON_URL=triton:{flags['grpc-port']}"
            in (ROOT / "docker-compose.yml").read_text()
        )
    for name in ("api", "worker"):
        for triton in ("triton", "triton-cpu"):
            dependency = services[name]["depends_on"][triton]
            assert dependency == {"condition": "service_healthy", "required": False}
        assert services[name]["environment"]["CK_TRITON_URL"] == "${CK_TRITON_URL:-}"


# --- Dockerfile and .dockerignore -----------------------------------------------------------


def _packages() -> list[str]:
    return [
        name.rstrip("*") for name in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    ]


def _copied() -> list[str]:
    sources = []
    for instruction, arguments in dockerfile():
        if instruction == "COPY" and not arguments.startswith("--from"):
            sources += arguments.split()[:-1]
    return sources


def test_dockerfile_builds_in_one_stage_and_runs_as_non_root_in_another() -> None:
    instructions = dockerfile()
    stages = [arguments for instruction, arguments in instructions if instruction == "FROM"]
    assert len(stages) == 2
    assert stages[0].endswith(" AS build")
    assert ("COPY", "--from=build /opt/venv /opt/venv") in instructions
    last_from = max(i for i, (instruction, _) in enumerate(instructions) if instruction == "FROM")
    runtime = instructions[last_from:]
    assert ("USER", "10001:10001") in runtime
    assert image_user() != 0
    # The Python of the image is the one the project targets.
    (default,) = [a for i, a in instructions if i == "ARG" and a.startswith("PYTHON_IMAGE=")]
    assert default.startswith(f"PYTHON_IMAGE=python:{PYPROJECT['tool']['mypy']['python_version']}-")


def test_dockerfile_copies_every_package_and_runs_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    copied = _copied()
    # README.md: pyproject.toml names it as the readme, so the build needs it.
    assert set(copied) == {"pyproject.toml", "README.md", *_packages()}
    cmd = [arguments for instruction, arguments in dockerfile() if instruction == "CMD"][-1]
    command, args = run_cli(monkeypatch, json.loads(cmd))
    assert command == "serve"
    assert ("EXPOSE", str(args.port)) in dockerfile()


def _glob(pattern: str) -> re.Pattern[str]:
    regex = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
            token, re.escape(token)
        )
    return re.compile(regex)


def dockerignored(path: str) -> bool:
    """Whether Docker leaves `path` out of the build context: the last matching pattern of
    .dockerignore wins, and a pattern matching a folder matches everything in it."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        regex = _glob(pattern.removeprefix("!"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not pattern.startswith("!")
    return ignored


def _files(source: str) -> Iterator[str]:
    path = ROOT / source
    if path.is_file():
        yield source
        return
    for file in path.rglob("*"):
        if file.is_file() and "__pycache__" not in file.parts:
            yield file.relative_to(ROOT).as_posix()


def test_dockerignore_sends_what_the_dockerfile_copies_and_nothing_else() -> None:
    for source in _copied():
        for file in _files(source):
            assert not dockerignored(file), f"{file} is copied but ignored"
    assert os.path.exists(ROOT / "resolvers" / "guard" / "injection_rules.json")
    assert not dockerignored("resolvers/guard/injection_rules.json")  # package data
    for private in (
        ".env",
        ".git/HEAD",
        ".venv/bin/python",
        "tests/conftest.py",
        "k8s/base/api.yaml",
        "model_repository/writer/1/model.py",
        "schema/__pycache__/app.cpython-311.pyc",
    ):
        assert dockerignored(private), f"{private} would be sent to the builder"
