"""Streams of a turn: iterate text deltas, or every typed event; `.reply` when done.

AsyncStream consumes the engine's events directly; Stream (sync) pulls the same events
from the client's event-loop thread, one hand-off per event.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
from anyio.from_thread import BlockingPortal

from chinwag.errors import ChinwagError
from chinwag.types import Done, ErrorEvent, Event, Reply, TextDelta


class _Outcome:
    """What both stream kinds learn from the events: the reply, or the error to raise."""

    _reply: Reply | None = None

    def _see(self, event: Event) -> None:
        if type(event) is Done:
            self._reply = event.reply
        elif type(event) is ErrorEvent:
            self._reply = event.reply
            raise event.exception()

    @property
    def reply(self) -> Reply:
        """The finished Reply; available once the stream has been consumed."""
        if self._reply is None:
            raise ChinwagError("The stream has not finished yet: iterate it to the end first.")
        return self._reply


class AsyncStream(_Outcome):
    """`async for text in stream` yields text deltas; `stream.reply` is the final Reply."""

    def __init__(self, events: AsyncIterator[Event]) -> None:
        self._events = events

    async def events(self) -> AsyncIterator[Event]:
        """Every typed event of the turn; a failure arrives as ErrorEvent, then is raised."""
        async for event in self._events:
            yield event
            self._see(event)

    async def __aiter__(self) -> AsyncIterator[str]:
        async for event in self._events:
            if type(event) is TextDelta:
                yield event.text
            else:
                self._see(event)

    async def text(self) -> str:
        """Consume the stream and return the whole answer."""
        async for _ in self:
            pass
        return self.reply.text

    async def aclose(self) -> None:
        """Stop the turn; what was said so far is stored as a partial answer."""
        aclose: Callable[[], Any] | None = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


_END = object()


class Stream(_Outcome):
    """The sync face of AsyncStream: `for text in stream`, then `stream.reply`.

    One task on the client's loop owns the turn; it pulls the next event only when this
    thread asks, so a stopped stream stores exactly the text that was handed out.
    """

    def __init__(self, portal: BlockingPortal, events: AsyncIterator[Event]) -> None:
        self._portal = portal
        self._events = events
        self._pump: Future[None] | None = None
        self._pull: Callable[[], Awaitable[Any]] | None = None
        self._scope: anyio.CancelScope | None = None
        self._finished = False

    async def _run(self, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
        asks, asked = anyio.create_memory_object_stream[None](1)
        give, given = anyio.create_memory_object_stream[Any](1)

        async def pull() -> Any:
            await asks.send(None)
            return await given.receive()

        with anyio.CancelScope() as self._scope:
            task_status.started(pull)
            try:
                async for _ in asked:
                    try:
                        item: Any = await anext(self._events)
                    except StopAsyncIteration:
                        item = _END
                    except Exception as exc:
                        item = exc
                    await give.send(item)
                    if item is _END or isinstance(item, Exception):
                        break
            finally:
                with anyio.CancelScope(shield=True):
                    aclose = getattr(self._events, "aclose", None)
                    if aclose is not None:
                        await aclose()
                    await give.send(_END)

    def _next(self) -> Any:
        if self._pull is None:
            self._pump, self._pull = self._portal.start_task(self._run)
        return self._portal.call(self._pull)

    def events(self) -> Iterator[Event]:
        """Every typed event of the turn; a failure arrives as ErrorEvent, then is raised."""
        if self._finished:
            return
        try:
            while True:
                item = self._next()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
                self._see(item)
        finally:
            self._finished = True
            self.close()

    def __iter__(self) -> Iterator[str]:
        for event in self.events():
            if type(event) is TextDelta:
                yield event.text

    def text(self) -> str:
        """Consume the stream and return the whole answer."""
        for _ in self:
            pass
        return self.reply.text

    def close(self) -> None:
        """Stop the turn and wait until the partial answer is stored."""
        pump = self._pump
        if pump is None or pump.done():
            return
        if self._scope is not None:
            self._portal.call(self._scope.cancel)
        with contextlib.suppress(BaseException):  # its outcome was already handed out
            pump.result()

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
