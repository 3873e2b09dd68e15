"""What every log line says about its request: request id, user id (never an e-mail),
GraphQL operation, creation id and trace id. Set where they become known; a logging filter
copies them onto each record (see `schema/logs.py`)."""

from __future__ import annotations

import contextvars
import logging

from opentelemetry import trace

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
USER_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_id", default=None)
OPERATION: contextvars.ContextVar[str | None] = contextvars.ContextVar("operation", default=None)
CREATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "creation_id", default=None
)
_FIELDS = (
    ("request_id", REQUEST_ID),
    ("user_id", USER_ID),
    ("operation", OPERATION),
    ("creation_id", CREATION_ID),
)


class ContextFilter(logging.Filter):
    """Adds the context fields to every record (None when unknown), and the trace id while a
    recorded span is current, so a log line leads to its trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in _FIELDS:
            if not hasattr(record, name):
                setattr(record, name, variable.get())
        if not hasattr(record, "trace_id"):
            span = trace.get_current_span().get_span_context()
            record.trace_id = format(span.trace_id, "032x") if span.is_valid else None
        return True
