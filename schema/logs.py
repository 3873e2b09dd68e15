"""Logging of every process: one line per record, JSON in production, with the request
context (`resolvers/core/logcontext.py`) on each line. Upload URLs are capabilities (a signed
ticket in the path, good for the URL's lifetime): access log lines never show the ticket."""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

from resolvers.core.logcontext import ContextFilter

# What follows /uploads/ in a path, up to a query, a quote or a space: the ticket.
_TICKET = re.compile(r"(/uploads/)[^/?\s\"']+")
_REDACTED = r"\1<redacted>"
# uvicorn's loggers that print request paths (the access log; errors about requests).
_SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error")
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
    redact_tickets()


class RedactTickets(logging.Filter):
    """Replaces upload tickets in a record's message and arguments by `<redacted>`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _TICKET.sub(_REDACTED, record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TICKET.sub(_REDACTED, arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def redact_tickets() -> None:
    """Put RedactTickets on uvicorn's loggers, once (whoever configures their handlers,
    `configure` or uvicorn's own log config, a logger's filters stay)."""
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTickets) for f in logger.filters):
            logger.addFilter(RedactTickets())
