"""Logging of every process: one line per record, JSON in production, with the request
context (`resolvers/logcontext.py`) on each line."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from resolvers.logcontext import ContextFilter

_TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_JSON_FIELDS = (
    "%(asctime)s %(levelname)s %(name)s %(message)s "
    "%(request_id)s %(user_id)s %(operation)s %(creation_id)s %(trace_id)s"
)


def configure(*, json_lines: bool, level: int = logging.INFO) -> None:
    """Route every logger (ours, uvicorn's, arq's) through one handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if json_lines:
        handler.setFormatter(
            JsonFormatter(
                _JSON_FIELDS,
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
