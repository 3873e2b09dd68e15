"""What every log line says about its request: request id, user id (never an e-mail),
GraphQL operation and creation id. Set where they become known; a logging filter copies them
onto each record (see `schema/logs.py`)."""

from __future__ import annotations

import contextvars
import logging

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
    """Adds the context fields to every record (None when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in _FIELDS:
            if not hasattr(record, name):
                setattr(record, name, variable.get())
        return True
