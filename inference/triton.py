"""Generation on Triton Inference Server over gRPC streaming (tritonclient.grpc.aio).

Every generation model served to us follows one contract (the constants below): a decoupled
model that takes `prompt`, `max_tokens`, `temperature` and `seed` and sends one response per
model token, each holding a `text` delta. One gRPC stream carries one request; the end of the
stream is the end of the generation (the aio client cannot ask for an empty final response).
"""

from __future__ import annotations

import asyncio
import codecs
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc  # type: ignore[import-untyped]  # grpcio ships no type hints
import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import (
    TRITON_RESERVED_REQUEST_PARAMS,
    TRITON_RESERVED_REQUEST_PARAMS_PREFIX,
    InferenceServerException,
)

from inference.base import (
    BadInput,
    Completion,
    Delta,
    GenerationRequest,
    InferenceError,
    InferenceTimeout,
    ModelUnavailable,
    collect,
)
from inference.tracing import detached_span

# The model contract: every input and output has shape [1] (the models do not batch).
PROMPT_INPUT = "prompt"  # BYTES, UTF-8
MAX_TOKENS_INPUT = "max_tokens"  # INT32
TEMPERATURE_INPUT = "temperature"  # FP32
SEED_INPUT = "seed"  # INT64, NO_SEED when the caller gave none
TEXT_OUTPUT = "text"  # BYTES, the UTF-8 bytes of one model token per response
NO_SEED = -1

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_GRPC_MAX_MESSAGE = 2**31 - 1
# gRPC backs off up to 120 s between reconnects by default; a restarted Triton pod should be
# used again within seconds.
_MAX_RECONNECT_BACKOFF_MS = 5_000
# Triton's own request validation messages (the stream carries text, not a status code).
_BAD_INPUT_MESSAGE = re.compile(
    r"unexpected shape|data-type is|unexpected inference (input|output)|"
    r"missing required input|inputs but got|byte size|invalid argument",
    re.IGNORECASE,
)
_SUMMARY_CHARS = 300


@dataclass(frozen=True)
class TritonConfig:
    """Where Triton listens ("host:port", gRPC) and how long we wait for it, in seconds."""

    url: str
    stream_timeout: float = 300.0  # the whole generation
    idle_timeout: float = 30.0  # between two tokens, and before the first one
    connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        for name in ("stream_timeout", "idle_timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TritonConfig.{name} must be positive")


class TritonEngine:
    """The `Engine` for models on Triton; one gRPC client per engine, opened on first use."""

    name = "triton"

    def __init__(self, config: TritonConfig) -> None:
        self.config = config
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """Yield the model's text as it comes; closing the iterator cancels the Triton request."""
        payload = _payload(request)
        client = self._connection()
        await self._await_channel(client)
        sent = False

        async def requests() -> AsyncIterator[dict[str, Any]]:
            nonlocal sent
            yield payload
            # Reached once tritonclient converted and sent the request: errors after this
            # point come from the server or the connection, not from our request.
            sent = True

        responses = client.stream_infer(requests(), stream_timeout=self.config.stream_timeout)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending_tokens = tokens = 0
        with detached_span(
            "triton stream_infer", **{"rpc.system": "grpc", "triton.model": request.model}
        ) as call:
            try:
                while True:
                    try:
                        async with asyncio.timeout(self.config.idle_timeout):
                            result, error = await anext(responses)
                    except StopAsyncIteration:
                        break
                    except TimeoutError as exc:
                        raise InferenceTimeout(
                            f"{request.model}: no token within {self.config.idle_timeout} s"
                        ) from exc
                    except asyncio.CancelledError as exc:
                        if _cancelling():
                            raise
                        raise self._unexpected_cancel(request, sent) from exc
                    except (grpc.RpcError, InferenceServerException) as exc:
                        raise _translate(exc, request.model) from exc
                    if error is not None:
                        raise _translate(error, request.model) from error
                    # A token may end inside a multi-byte character; the decoder holds it back and
                    # its token is counted with the next delta.
                    text = decoder.decode(_token_bytes(result, request.model))
                    if not tokens:
                        call.add_event("first token")
                    pending_tokens += 1
                    tokens += 1
                    if text:
                        yield Delta(text, pending_tokens)
                        pending_tokens = 0
                tail = decoder.decode(b"", final=True)
                if tail or pending_tokens:
                    yield Delta(tail, pending_tokens)
            finally:
                call.set_attribute("triton.tokens", tokens)
                # No-op once the stream ended; otherwise asks Triton to drop the request.
                responses.cancel()

    async def complete(self, request: GenerationRequest) -> Completion:
        """Generate the whole text (the model only streams) and return it with its usage."""
        return await collect(self, request)

    async def ready(self, model: str | None = None) -> bool:
        """True when the server (and `model`, if given) is ready; bounded by connect_timeout."""
        timeout = self.config.connect_timeout
        try:
            client = self._connection()
            async with asyncio.timeout(timeout):
                if not await client.is_server_ready(client_timeout=timeout):
                    return False
                return model is None or bool(
                    await client.is_model_ready(model, client_timeout=timeout)
                )
        except (InferenceError, InferenceServerException, grpc.RpcError, TimeoutError):
            return False

    async def aclose(self) -> None:
        """Close the gRPC channel; streams still running end with ModelUnavailable."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def _connection(self) -> Any:
        if self._closed:
            raise ModelUnavailable("the Triton engine is closed")
        loop = asyncio.get_running_loop()
        if self._client is None:
            # grpc.aio channels belong to the loop that made them, hence lazily, in the loop.
            self._client = triton_aio.InferenceServerClient(
                self.config.url,
                channel_args=[
                    ("grpc.max_send_message_length", _GRPC_MAX_MESSAGE),
                    ("grpc.max_receive_message_length", _GRPC_MAX_MESSAGE),
                    ("grpc.max_reconnect_backoff_ms", _MAX_RECONNECT_BACKOFF_MS),
                ],
            )
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError("TritonEngine is bound to another event loop")
        return self._client

    async def _await_channel(self, client: Any) -> None:
        # Without this a blackholed address would only fail after gRPC's 20 s connect
        # timeout (or our idle timeout, as a misleading InferenceTimeout). A refused port
        # reaches TRANSIENT_FAILURE at once, and the RPC then fails fast with UNAVAILABLE.
        channel = getattr(client, "_channel", None)  # tritonclient exposes no accessor
        if channel is None:
            return
        settled = (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE)
        state = channel.get_state(try_to_connect=True)
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                while state not in settled and state != grpc.ChannelConnectivity.SHUTDOWN:
                    await channel.wait_for_state_change(state)
                    state = channel.get_state(try_to_connect=True)
        except TimeoutError as exc:
            raise ModelUnavailable(
                f"cannot connect to Triton at {self.config.url} "
                f"within {self.config.connect_timeout} s"
            ) from exc

    def _unexpected_cancel(self, request: GenerationRequest, sent: bool) -> InferenceError:
        # tritonclient reports an error in the request iterator, and a channel closed under a
        # running stream, as a bare CancelledError.
        if self._closed:
            return ModelUnavailable("the Triton engine was closed during the stream")
        if not sent:
            return BadInput(f"{request.model}: tritonclient refused the request")
        return ModelUnavailable(f"{request.model}: the Triton stream was cancelled")


def _payload(request: GenerationRequest) -> dict[str, Any]:
    """The stream_infer request for `request`, or BadInput before anything is sent."""
    try:
        prompt = request.prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadInput("the prompt is not valid Unicode text") from exc
    if not 0 <= request.max_tokens <= _INT32_MAX:
        raise BadInput(f"max_tokens must be between 0 and {_INT32_MAX}")
    if not (math.isfinite(request.temperature) and 0 <= request.temperature <= _FLOAT32_MAX):
        raise BadInput("temperature must be a finite number >= 0")
    seed = NO_SEED if request.seed is None else request.seed
    if request.seed is not None and not 0 <= seed <= _INT64_MAX:
        raise BadInput(f"seed must be between 0 and {_INT64_MAX}")
    for key in request.parameters:
        if key in TRITON_RESERVED_REQUEST_PARAMS or key.startswith(
            TRITON_RESERVED_REQUEST_PARAMS_PREFIX
        ):
            raise BadInput(f"parameter {key!r} is reserved by Triton")
    inputs = [
        _tensor(PROMPT_INPUT, "BYTES", np.array([prompt], dtype=np.object_)),
        _tensor(MAX_TOKENS_INPUT, "INT32", np.array([request.max_tokens], dtype=np.int32)),
        _tensor(TEMPERATURE_INPUT, "FP32", np.array([request.temperature], dtype=np.float32)),
        _tensor(SEED_INPUT, "INT64", np.array([seed], dtype=np.int64)),
    ]
    return {
        "model_name": request.model,
        "inputs": inputs,
        "outputs": [triton_aio.InferRequestedOutput(TEXT_OUTPUT)],
        "request_id": request.request_id,
        "parameters": dict(request.parameters) or None,
    }


def _tensor(name: str, datatype: str, data: np.ndarray[Any, Any]) -> Any:
    tensor = triton_aio.InferInput(name, list(data.shape), datatype)
    tensor.set_data_from_numpy(data)
    return tensor


def _token_bytes(result: Any, model: str) -> bytes:
    text = result.as_numpy(TEXT_OUTPUT)
    if text is None or text.shape != (1,) or not isinstance(text[0], bytes):
        raise ModelUnavailable(f"{model}: response without a BYTES [1] {TEXT_OUTPUT!r} output")
    return bytes(text[0])


def _cancelling() -> bool:
    """True when the current task itself is being cancelled (not a tritonclient error)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _translate(exc: grpc.RpcError | InferenceServerException, model: str) -> InferenceError:
    """Our error for a tritonclient or gRPC failure (the caller chains it with `from`)."""
    if isinstance(exc, InferenceServerException):
        status, message = exc.status() or "", exc.message() or ""
    else:
        rpc = isinstance(exc, grpc.aio.AioRpcError)
        status = str(exc.code()) if rpc else ""
        message = (exc.details() if rpc else None) or str(exc)
    summary = f"{model}: {_summary(message)}"
    if "DEADLINE_EXCEEDED" in status:
        return InferenceTimeout(summary)
    if "INVALID_ARGUMENT" in status or "OUT_OF_RANGE" in status:
        return BadInput(summary)
    if not status and _BAD_INPUT_MESSAGE.search(message):
        return BadInput(summary)
    # Unreachable server, unknown or unloaded model, and a model that fails while generating:
    # none is the caller's fault and a retry may succeed.
    return ModelUnavailable(summary)


def _summary(message: str) -> str:
    # PyTriton sends a model's whole traceback; its last line names the error.
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "unknown error"
    return last[:_SUMMARY_CHARS]
