"""`creation-king`: serve, worker, migrate, export-schema, check-schema, token. A composition
root."""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from resolvers.core.settings import Settings
from schema import logs

# Generation thresholds of `tune_gc` (CPython's defaults: 700, 10, 10).
GC_THRESHOLDS = (50_000, 50, 100)
# uvicorn options of `serve`; bench/bare_app.py uses the same so its baseline is comparable.
UVICORN_OPTIONS: dict[str, Any] = {
    "ws_per_message_deflate": False,  # costs CPU on every token frame
    "ws_max_size": 1 << 20,
    "timeout_graceful_shutdown": 10,
    "server_header": False,  # no `server: uvicorn` advertising the stack
}


def _settings() -> Settings:
    try:
        return Settings()
    except (ValidationError, ValueError) as exc:  # also a CK_* value that is not valid JSON
        sys.exit(f"creation-king: bad configuration:\n{exc}")


def tune_gc() -> None:
    """The garbage collector of a long-running server, called once everything is imported.

    What exists now (modules, the schema) is frozen out of collections, and collections run
    far less often than CPython's defaults (700, 10, 10). With a thousand subscriptions open,
    the defaults made full collections of every live object take up to a quarter of a
    second in the middle of a stream, and took a third of the fan-out time (bench/README.md).
    Reference counting still frees everything that is not in a cycle at once.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def banner(settings: Settings, host: str, port: int) -> str:
    """What `serve` prints first: the env, what runs in this process and what is a service,
    the engine, and GraphiQL's address only when it is served."""
    base = f"http://{host}:{port}"
    parts = [
        f"database: {'Postgres' if settings.database_url else f'SQLite in {settings.data_dir}'}",
        f"redis: {'in-process' if settings.embedded_redis else 'service'}",
        "jobs: in this process" if settings.embedded_redis else "jobs: `creation-king worker`",
        f"files: {f'S3 bucket {settings.s3_bucket}' if settings.s3_bucket else settings.data_dir}",
    ]
    embedded = not (settings.database_url or settings.redis_url or settings.s3_bucket)
    mode = "embedded" if embedded else "with services"
    engine = settings.engine_kind + (f" at {settings.triton_url}" if settings.triton_url else "")
    if settings.openai_base_url:
        engine += f", openai backend at {settings.openai_base_url}"
    lines = [
        f"Creation King on {base} (env: {settings.env}, {mode}, engine: {engine})",
        "  " + "; ".join(parts),
        f"  GraphiQL: {base}/graphql" if settings.graphiql_enabled else "  GraphiQL: off",
    ]
    return "\n".join(lines)


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    settings = _settings()
    if args.workers > 1 and not (settings.database_url and settings.redis_url):
        sys.exit(
            "creation-king: --workers needs CK_DATABASE_URL and CK_REDIS_URL: the processes "
            "share creations, events and limits through Postgres and Redis (embedded mode "
            "keeps them in one process)"
        )
    print(banner(settings, args.host, args.port), flush=True)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "log_config": None,  # logging is configured by us (JSON in production)
        **UVICORN_OPTIONS,
    }
    if args.workers > 1:
        # uvicorn binds the socket here and spawns the processes; each builds its own app.
        uvicorn.run("schema.cli:worker_app", factory=True, workers=args.workers, **options)
        return
    from schema.app import create_app

    app = create_app(settings)
    tune_gc()
    uvicorn.run(app, **options)


def worker_app() -> Any:
    """The app of one `serve --workers N` process (uvicorn calls this in each child)."""
    from schema.app import create_app

    logs.configure(json_lines=_json_logs())
    app = create_app(_settings())
    tune_gc()
    return app


def _worker(_args: argparse.Namespace) -> None:
    from jobs.worker import serve

    settings = _settings()
    tune_gc()
    asyncio.run(serve(settings))


def _migrate(_args: argparse.Namespace) -> None:
    from resolvers.core import db

    settings = _settings()
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(db.migrate(settings.db_url))
    print("migrations applied", flush=True)


def _export_schema(args: argparse.Namespace) -> None:
    from schema.build import SDL_PATH, export_sdl

    sdl = export_sdl()
    if args.stdout:
        sys.stdout.write(sdl)
        return
    target = Path(args.output) if args.output else SDL_PATH
    target.write_text(sdl)
    print(f"wrote {target}", flush=True)


def _check_schema(args: argparse.Namespace) -> None:
    from schema import contract
    from schema.build import SDL_PATH, export_sdl

    sdl = export_sdl()
    if SDL_PATH.read_text() != sdl:
        sys.exit("schema/schema.graphql is stale: run `creation-king export-schema`")
    if args.release:
        contract.release(sdl)
        print(f"released: {contract.RELEASED_PATH} is now the contract", flush=True)
        return
    unintended = contract.unintended_changes(sdl)
    if unintended:
        listed = "\n  ".join(unintended)
        sys.exit(
            f"breaking changes against {contract.RELEASED_PATH.name}:\n  {listed}\n"
            f"If intended, list each line in {contract.INTENDED_PATH} with the reason."
        )
    print("schema: no unintended breaking change against the released SDL", flush=True)


def _token(args: argparse.Namespace) -> None:
    from resolvers.core import db
    from resolvers.core.models import Role, User
    from resolvers.resources import make_auth

    settings = _settings()

    async def mint() -> str:
        auth = make_auth(settings)
        if settings.database_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            await db.migrate(settings.db_url)
        await db.open_db(settings.db_url)
        try:
            user = await User.get_or_none(email=args.email.strip().lower())
            if user is None:
                if not args.create:
                    sys.exit(f"no user {args.email}; pass --create to make one")
                user = await auth.register(args.email, secrets.token_urlsafe(24))
                print(f"created user {user.email}", file=sys.stderr)
            if args.admin and user.role is not Role.ADMIN:
                user.role = Role.ADMIN
                await user.save(update_fields=["role"])
                print(f"{user.email} is now an admin", file=sys.stderr)
            return auth.issue(str(user.id), role=user.role)
        finally:
            await db.close_db()

    print(asyncio.run(mint()))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `creation-king` console script."""
    parser = argparse.ArgumentParser(prog="creation-king", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (embedded mode unless CK_* URLs)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="API processes sharing the port, e.g. one per core (needs Postgres and Redis)",
    )
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run an arq worker for long creations")
    worker.set_defaults(run=_worker)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(run=_migrate)

    export = commands.add_parser("export-schema", help="write the SDL to schema/schema.graphql")
    export.add_argument("--output", help="another file to write")
    export.add_argument("--stdout", action="store_true", help="print instead of writing")
    export.set_defaults(run=_export_schema)

    check = commands.add_parser(
        "check-schema", help="fail on breaking changes against schema/released.graphql"
    )
    check.add_argument(
        "--release", action="store_true", help="make the current SDL the released contract"
    )
    check.set_defaults(run=_check_schema)

    token = commands.add_parser("token", help="mint an access token (development)")
    token.add_argument("email")
    token.add_argument("--create", action="store_true", help="create the user if missing")
    token.add_argument("--admin", action="store_true", help="make the user an admin first")
    token.set_defaults(run=_token)

    args = parser.parse_args(argv)
    logs.configure(json_lines=_json_logs())
    args.run(args)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _json_logs() -> bool:
    """JSON lines when CK_LOG_FORMAT says so, or in production unless it says text."""
    try:
        settings = Settings()
    except (ValidationError, ValueError):
        return False  # the command reports the configuration error itself
    if settings.log_format == "auto":
        return settings.env == "production"
    return settings.log_format == "json"


if __name__ == "__main__":
    main()
