"""Streams of a turn: iterate text deltas, or every typed event; `.reply` when done.

AsyncStream consumes the engine's events directly; Stream (sync) takes the same events
from the client's event-loop thread, in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from typing import Any

import anyio
import anyio.abc
from anyio.from_thread import BlockingPortal

from chinwag.closing import Closing
from chinwag.errors import ChinwagError, error_from
from chinwag.types import Done, ErrorEvent, Event, Reply, TextDelta


class _Outcome:
    """What both stream kinds learn from the events: the reply, or the error to raise."""

    _reply: Reply | None = None

    def _learn(self, event: Event) -> None:
        if type(event) is Done:
            self._reply = event.reply
        elif type(event) is ErrorEvent:
            self._reply = event.reply
            raise error_from(event)

    @property
    def reply(self) -> Reply:
        """The finished Reply; available once the stream has been consumed."""
        if self._reply is None:
            raise ChinwagError("The stream has not finished yet: iterate it to the end first.")
        return self._reply


async def complete(events: AsyncIterator[Event]) -> Reply:
    """Run a turn to its end: its Reply, or its error raised."""
    stream = AsyncStream(events)
    async for _ in stream.events():
        pass
    return stream.reply


class AsyncStream(_Outcome):
    """`async for text in stream` yields text deltas; `stream.reply` is the final Reply.

    Its iterators are plain objects over the engine's one generator, so a loop left with
    `break` leaves nothing behind for the event loop to close but that generator.
    """

    def __init__(self, events: AsyncIterator[Event]) -> None:
        self._events = events
        self._raise: ChinwagError | None = None  # after an ErrorEvent was handed out

    def events(self) -> AsyncIterator[Event]:
        """Every typed event of the turn; a failure arrives as ErrorEvent, then is raised."""
        return _AsyncEvents(self)

    def __aiter__(self) -> AsyncIterator[str]:
        return _AsyncTexts(self)

    async def _next(self) -> Event:
        if self._raise is not None:
            raise self._raise
        return await self._events.__anext__()

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


class _AsyncEvents:
    def __init__(self, stream: AsyncStream) -> None:
        self._stream = stream

    def __aiter__(self) -> _AsyncEvents:
        return self

    async def __anext__(self) -> Event:
        stream = self._stream
        event = await stream._next()
        if type(event) is Done:
            stream._reply = event.reply
        elif type(event) is ErrorEvent:
            stream._reply = event.reply
            stream._raise = error_from(event)  # raised when the next event is asked for
        return event


class _AsyncTexts:
    def __init__(self, stream: AsyncStream) -> None:
        self._stream = stream

    def __aiter__(self) -> _AsyncTexts:
        return self

    async def __anext__(self) -> str:
        stream = self._stream
        while True:
            event = await stream._next()
            if type(event) is TextDelta:
                return event.text
            stream._learn(event)


_END = object()

# Seconds between the reader's checks that its client is still open, while it waits.
_CHECK_EVERY = 0.5


class Stream(_Outcome, Closing):
    """The sync face of AsyncStream: `for text in stream`, then `stream.reply`.

    One task on the client's loop owns the turn and reads ahead into a small buffer;
    this thread takes whatever is buffered in one hand-off. A stopped stream stores
    what the model had sent when it stopped: at most 2 * READ_AHEAD + 1 events more
    than this thread had read (a batch taken, a full buffer, one in flight).
    AsyncStream reads no further than its consumer.

    The buffer is a deque under a threading.Condition rather than a portal call per
    batch: a portal call is a round trip through the loop (a future, a wake-up, a
    handle), and the reader paid it for every batch. Now the loop only hears from
    this thread when the buffer was full and the pump waits for room.
    """

    # 128, not 64: each full buffer stalls the pump for a hand-off through the loop, and
    # at 64 those stalls cost the sync stream a fifth of its rate (bench_stream, sync).
    READ_AHEAD = 128

    def __init__(
        self,
        portal: BlockingPortal,
        source: AsyncStream,
        check_open: Callable[[], None] = lambda: None,
    ) -> None:
        self._portal = portal
        self._source = source
        self._check_open = check_open  # the client's: a closed client is an error, not a hang
        self._pump: Future[None] | None = None
        self._scope: anyio.CancelScope | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Condition(threading.Lock())
        self._buffer: deque[Any] = deque()  # events, then an exception or _END
        self._reader_waiting = False
        self._room: asyncio.Future[None] | None = None  # the pump waits on it when full
        self._finished = False

    async def _run(self, *, task_status: anyio.abc.TaskStatus[Any]) -> None:
        self._loop = asyncio.get_running_loop()
        with anyio.CancelScope() as scope:
            task_status.started(scope)
            try:
                async for event in self._source._events:
                    room = self._put(event)
                    if room is not None:
                        await room
            except Exception as exc:
                self._put(exc)
            finally:
                # _END only once the partial answer is stored: the reader may look at it.
                with anyio.CancelScope(shield=True):
                    await self._source.aclose()
                self._put(_END)

    def _put(self, item: Any) -> asyncio.Future[None] | None:
        """Buffer one item (on the loop); a future to wait on when the buffer is full."""
        with self._ready:
            self._buffer.append(item)
            if self._reader_waiting:
                self._ready.notify()
            if len(self._buffer) < self.READ_AHEAD:
                return None
            self._room = room = asyncio.get_running_loop().create_future()
            return room

    def _take(self) -> deque[Any]:
        """Every buffered item, waiting for the first; wakes the pump if it waits for room."""
        with self._ready:
            while not self._buffer:
                self._reader_waiting = True
                try:
                    self._ready.wait(_CHECK_EVERY)
                finally:
                    self._reader_waiting = False
                if not self._buffer:
                    self._check_open()  # a loop that died cannot send _END
            items, self._buffer = self._buffer, deque()
            room, self._room = self._room, None
        if room is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop stopped: so did the pump
                self._loop.call_soon_threadsafe(_wake, room)
        return items

    def events(self) -> Iterator[Event]:
        """Every typed event of the turn; a failure arrives as ErrorEvent, then is raised."""
        if self._finished:
            return
        self._check_open()
        if self._pump is None:
            self._pump, self._scope = self._portal.start_task(self._run)
        try:
            while True:
                self._check_open()
                for item in self._take():
                    if item is _END:
                        if self._reply is None:
                            self._check_open()  # stopped by the client's close
                        return
                    if isinstance(item, BaseException):
                        raise item
                    yield item
                    self._learn(item)
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
            with contextlib.suppress(RuntimeError):  # the loop stopped: the turn did too
                self._portal.call(self._scope.cancel)
        with contextlib.suppress(BaseException):  # its outcome was already handed out
            pump.result()


def _wake(room: asyncio.Future[None]) -> None:
    """On the loop: let a pump that waits for room go on (unless it was cancelled)."""
    if not room.done():
        room.set_result(None)
