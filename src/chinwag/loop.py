"""The sync Client's event loop: one daemon thread per Client, reached through a portal.

anyio's `start_blocking_portal` runs its loop in a ThreadPoolExecutor thread, which the
interpreter joins at exit: a Client that was never closed hung the program forever. Here
the loop runs on a daemon thread, and a hook that runs before the interpreter joins its
threads stops every loop that is still running, giving its Client a short grace to store
what it was doing. Nothing here ever waits on the loop from inside the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures.thread  # its exit hook registers before ours, so ours runs first
import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.from_thread import BlockingPortal

T = TypeVar("T")

Closer = Callable[[float], Awaitable[None]]  # closes what runs on the loop, given a grace
Serve = Callable[[], AbstractAsyncContextManager[None]]  # what runs for the loop's lifetime

# Seconds an unclosed Client gets at interpreter exit to store partial answers and close.
EXIT_GRACE = 2.0

_running: set[LoopThread] = set()
_hook_lock = threading.Lock()
_hooked = False


class LoopThread:
    """An anyio event loop on a daemon thread; `portal` runs coroutines on it."""

    def __init__(self, serve: Serve, closer: Closer, *, name: str = "chinwag") -> None:
        self._serve = serve
        self._closer = closer
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: anyio.Event | None = None
        self._grace = 0.0
        self._calls: TaskGroup
        self._context: contextvars.Context  # the loop's own, where anyio knows its backend
        self._pending: set[Future[Any]] = set()
        self.portal: BlockingPortal
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        _hook_exit()
        self.thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure
        _running.add(self)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = anyio.Event()
            async with self._serve():
                async with anyio.create_task_group() as calls:
                    self._calls = calls
                    self._context = contextvars.copy_context()
                    async with BlockingPortal() as portal:
                        self.portal = portal
                        self._ready.set()
                        await self._stop.wait()
                        # Cancelled streams and calls store their partial answers as they end.
                        await portal.stop(cancel_remaining=True)
                    calls.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await self._closer(self._grace)

        try:
            anyio.run(main)
        except BaseException as exc:  # reported to the creator, or lost at exit
            self._failure = exc
        finally:
            self._ready.set()
            _running.discard(self)
            for future in list(self._pending):  # queued as the loop ended: never spawned
                future.cancel()

    def request_stop(self, grace: float) -> None:
        """Stop the loop soon, from any thread, without waiting: cancel, then close."""
        loop, stop = self._loop, self._stop
        if loop is None or stop is None or loop.is_closed():
            return
        self._grace = grace
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(stop.set)

    def stop(self, grace: float, timeout: float | None = None) -> None:
        """Stop the loop and wait for it (unless called from the loop itself)."""
        self.request_stop(grace)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def submit(self, func: Callable[[], Awaitable[T]]) -> Future[T]:
        """Run `func` on the loop; its Future at once, cancelled if the loop stops first.

        One hop to the loop, not the portal's two: `BlockingPortal.start_task_soon` waits
        for the loop to spawn the task before it returns, which cost each sync call a
        second thread wake-up.
        """
        future: Future[T] = Future()
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        loop = self._loop
        if loop is None or loop.is_closed():
            future.cancel()
            return future

        def spawn() -> None:
            try:
                self._calls.start_soon(self._run, func, future)
            except RuntimeError:  # the task group has closed: the loop is stopping
                future.cancel()

        try:
            loop.call_soon_threadsafe(spawn, context=self._context)
        except RuntimeError:  # the loop closed meanwhile
            future.cancel()
        return future

    async def _run(self, func: Callable[[], Awaitable[T]], future: Future[T]) -> None:
        """Run one submitted call, as the portal does: cancelling the Future cancels it."""
        loop = asyncio.get_running_loop()
        with anyio.CancelScope() as scope:

            def on_done(done: Future[T]) -> None:
                if done.cancelled():
                    with contextlib.suppress(RuntimeError):  # the loop is gone
                        loop.call_soon_threadsafe(scope.cancel)

            future.add_done_callback(on_done)
            try:
                result = await func()
            except anyio.get_cancelled_exc_class():
                future.cancel()
                raise
            except BaseException as exc:
                if future.set_running_or_notify_cancel():
                    future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                if future.set_running_or_notify_cancel():
                    future.set_result(result)


def _stop_all_at_exit() -> None:
    """Before the interpreter joins its threads: let the program's own threads and thread
    pools finish what they were doing (they may be using a Client), as the interpreter
    would, then stop every loop a program left running."""
    if not _running:
        return
    with contextlib.suppress(Exception):  # the pools' own exit hook, run first, as at exit
        concurrent.futures.thread._python_exit()
    ours = {loop.thread for loop in _running}
    while True:
        waiting = [
            t
            for t in threading.enumerate()
            if not t.daemon
            and t is not threading.current_thread()
            and t not in ours
            # anyio's idle workers wait for their loop to end: they are ours to stop.
            and type(t).__name__ != "WorkerThread"
        ]
        if not waiting:
            break
        for thread in waiting:
            thread.join()
    loops = list(_running)
    for loop in loops:
        loop.request_stop(EXIT_GRACE)
    for loop in loops:
        loop.thread.join(EXIT_GRACE + 3)


def _hook_exit() -> None:
    global _hooked
    with _hook_lock:
        if _hooked:
            return
        _hooked = True
    # threading's own exit hooks run before non-daemon threads (anyio's idle workers, the
    # local model's thread) are joined; plain atexit would run only after those joins.
    register: Callable[[Callable[[], None]], None] | None = getattr(
        threading, "_register_atexit", None
    )
    if register is not None:
        with contextlib.suppress(RuntimeError):  # created during shutdown: nothing to hook
            register(_stop_all_at_exit)
    else:  # pragma: no cover  (CPython has had _register_atexit since 3.9)
        import atexit

        atexit.register(_stop_all_at_exit)


__all__ = ["EXIT_GRACE", "LoopThread"]
