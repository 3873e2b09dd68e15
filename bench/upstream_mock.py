"""`python -m bench.upstream_mock --port P`: an OpenAI-compatible upstream with a known answer.

POST /v1/chat/completions (`stream: true` only) answers with numbered tokens, `t0 t1 t2 ...`
(each chunk's content is `t<i> `), so a client can check that none was lost or reordered:
the whole text is `answer(T)`. The pace and length come from the last line of the last
message, `D=<ms> T=<tokens>`:

- `D` is the milliseconds between two tokens; 0 sends the whole answer in one write (a burst).
  Tokens follow a fixed schedule (token i is due at i * D ms); when the process falls behind,
  every token already due goes out in one write, as a real server's socket buffer would.
- `T` is the number of tokens; without it, the request's `max_tokens` (else 16).

The stream is the OpenAI format: a first chunk with the role, one chunk per token, a chunk with
`finish_reason: "stop"`, a usage chunk when `stream_options.include_usage`, then
`data: [DONE]`. GET /v1/models lists the one model. The mock runs in its own process in the
bench so that its CPU is not counted with the gateway's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "bench-mock"
DEFAULT_TOKENS = 16
MAX_TOKENS = 100_000
_PACE = re.compile(r"\b([DT])=(\d+(?:\.\d+)?)\b")


@dataclass(frozen=True)
class Pace:
    """How one answer streams: `delay_ms` between tokens (0 = one burst), `tokens` in all."""

    delay_ms: float
    tokens: int


def parse_pace(prompt: str, max_tokens: int | None = None) -> Pace:
    """The `D=<ms> T=<tokens>` of the prompt's last line (D defaults to 0, T to max_tokens)."""
    lines = prompt.strip().splitlines()
    found = dict(_PACE.findall(lines[-1])) if lines else {}
    tokens = int(float(found["T"])) if "T" in found else (max_tokens or DEFAULT_TOKENS)
    return Pace(delay_ms=float(found.get("D", 0)), tokens=max(1, min(tokens, MAX_TOKENS)))


def token(index: int) -> str:
    """The content of the index-th chunk."""
    return f"t{index} "


def answer(tokens: int) -> str:
    """The whole text of an answer of `tokens` tokens, as a client must reassemble it."""
    return "".join(token(i) for i in range(tokens))


class _Chunks:
    """The SSE events of one completion, pre-encoded around the varying content (a mock that
    builds JSON per token would measure itself, not the clients)."""

    def __init__(self, model: str) -> None:
        head = json.dumps(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
            }
        )[:-1]
        self._head = head
        self._content = f'data: {head}, "choices": [{{"index": 0, "delta": {{"content": "'
        self._content_end = '"}, "finish_reason": null}]}\n\n'

    def event(self, choice: dict[str, Any] | None, usage: dict[str, int] | None = None) -> str:
        choices = [] if choice is None else [choice]
        body = json.dumps({"choices": choices, "usage": usage})[1:]
        return f"data: {self._head}, {body}\n\n"

    def role(self) -> str:
        delta = {"role": "assistant", "content": ""}
        return self.event({"index": 0, "delta": delta, "finish_reason": None})

    def tokens(self, start: int, stop: int) -> str:
        return "".join(f"{self._content}{token(i)}{self._content_end}" for i in range(start, stop))

    def end(self, usage: dict[str, int] | None) -> str:
        stop = self.event({"index": 0, "delta": {}, "finish_reason": "stop"})
        tail = "" if usage is None else self.event(None, usage)
        return f"{stop}{tail}data: [DONE]\n\n"


async def _stream(pace: Pace, chunks: _Chunks, usage: dict[str, int] | None) -> AsyncIterator[str]:
    if pace.delay_ms <= 0:
        yield chunks.role() + chunks.tokens(0, pace.tokens) + chunks.end(usage)
        return
    loop = asyncio.get_running_loop()
    step = pace.delay_ms / 1000
    start = loop.time()
    sent = 0
    head = chunks.role()
    while sent < pace.tokens:
        wait = start + sent * step - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        due = int((loop.time() - start) / step) + 1  # every token due by now
        upto = min(pace.tokens, max(due, sent + 1))
        yield head + chunks.tokens(sent, upto)
        head, sent = "", upto
    yield chunks.end(usage)


async def _chat(request: Request) -> Response:
    body = await request.json()
    if not body.get("stream"):
        error = {"message": "this mock only streams", "type": "invalid_request_error"}
        return JSONResponse({"error": error}, status_code=400)
    prompt = str(body["messages"][-1]["content"])
    pace = parse_pace(prompt, body.get("max_tokens"))
    usage = None
    if (body.get("stream_options") or {}).get("include_usage"):
        prompt_tokens = len(prompt.split())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": pace.tokens,
            "total_tokens": prompt_tokens + pace.tokens,
        }
    chunks = _Chunks(str(body.get("model", MODEL)))
    return StreamingResponse(_stream(pace, chunks, usage), media_type="text/event-stream")


async def _models(request: Request) -> Response:
    model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}
    return JSONResponse({"object": "list", "data": [model]})


def create_app() -> Starlette:
    """The mock upstream's ASGI app."""
    return Starlette(
        routes=[
            Route("/v1/chat/completions", _chat, methods=["POST"]),
            Route("/v1/models", _models, methods=["GET"]),
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m bench.upstream_mock`."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.upstream_mock", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        timeout_keep_alive=300,  # as a hosted API would: the clients keep their pools warm
    )


if __name__ == "__main__":
    main()
