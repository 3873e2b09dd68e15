"""Client spans for model calls, through opentelemetry-api (no-ops unless the service
installs an SDK; see resolvers/core/tracing.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

_tracers: dict[str, tuple[trace.TracerProvider, trace.Tracer]] = {}


def tracer(name: str = "creation_king") -> trace.Tracer:
    """The tracer of the installed provider. Not a module-level `get_tracer`: that proxy
    binds to the first provider for good, and tests install one per test."""
    provider = trace.get_tracer_provider()
    cached = _tracers.get(name)
    if cached is None or cached[0] is not provider:
        cached = _tracers[name] = (provider, provider.get_tracer(name))
    return cached[1]


@contextmanager
def detached_span(name: str, **attributes: str | int | float | bool) -> Iterator[trace.Span]:
    """A client span that is never made current: safe to hold across an async generator's
    yields (a current span would leak into the consumer between them). Errors mark it; a
    consumer closing the generator early (GeneratorExit) does not."""
    call = tracer("creation_king.inference").start_span(
        name, kind=SpanKind.CLIENT, attributes=attributes
    )
    try:
        yield call
    except GeneratorExit:
        call.set_attribute("closed_early", True)
        raise
    except BaseException as exc:
        call.record_exception(exc)
        call.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        call.end()
