"""The throughput baseline: a bare Strawberry `{ hello }` app on Starlette and uvicorn.

Run as `python -m bench.bare_app --port P`; uvicorn is started with the same options as
`creation-king serve` (schema/cli.py), so the two differ only in the application.
"""

from __future__ import annotations

import argparse

import strawberry
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL

from schema.cli import UVICORN_OPTIONS, tune_gc


@strawberry.type
class Query:
    """One constant field."""

    @strawberry.field
    def hello(self) -> str:
        """A constant greeting."""
        return "world"


async def _healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app() -> Starlette:
    """Strawberry's ASGI view on /graphql (POST only, no IDE), plus /healthz."""
    view: GraphQL[None, None] = GraphQL(
        strawberry.Schema(query=Query), graphql_ide=None, allow_queries_via_get=False
    )
    return Starlette(
        routes=[Route("/graphql", view, methods=["GET", "POST"]), Route("/healthz", _healthz)]
    )


def main(argv: list[str] | None = None) -> None:
    """Serve the bare app on one uvicorn worker."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    app = create_app()
    tune_gc()  # as `creation-king serve` does: the same runtime, only the app differs
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        **UVICORN_OPTIONS,
    )


if __name__ == "__main__":
    main()
