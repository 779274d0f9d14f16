"""Work that must not delay the caller: titles, and keeping a running turn's answer saved.

Jobs run in the task group of the client that owns them (`async with AsyncClient()`, or
the sync Client's loop), so they work under any anyio backend. A client used without
`async with` on asyncio runs them as asyncio tasks; elsewhere `spawn` says it could not,
and the caller does without (a title from the question's words, no periodic saves).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc

log = logging.getLogger("chinwag.background")


class Job:
    """One background job: cancel it and wait for it to end."""

    def __init__(self, end: Callable[[Job], None] = lambda job: None) -> None:
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.timer: asyncio.TimerHandle | None = None  # a job that has not started yet
        self._end = end

    def ended(self) -> None:
        self.done.set()
        self._end(self)

    async def stop(self) -> None:
        """Cancel the job and wait until it has ended (its shielded writes included)."""
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()  # it never started: nothing to wait for
            self.ended()
            return
        self.scope.cancel()
        with anyio.CancelScope(shield=True):
            await self.done.wait()


class Background:
    """The jobs of one engine, and the task group they run in."""

    def __init__(self) -> None:
        self._group: anyio.abc.TaskGroup | None = None
        self._jobs: set[Job] = set()
        self._lasting: set[Job] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # asyncio, when there is no group

    def attach(self, group: anyio.abc.TaskGroup | None) -> None:
        self._group = group

    def spawn(
        self,
        work: Callable[[], Awaitable[None]],
        what: str,
        *,
        lasting: bool = False,
        after: float = 0.0,
    ) -> Job | None:
        """Start `work` in the background; None if there is nowhere to run it. A lasting
        job (a connection held open) runs until cancelled: `settle` does not wait for it.
        With `after`, the work starts that many seconds from now."""
        job = Job(self._forget)

        async def run(wait: float) -> None:  # a job with no timer to start it sleeps first
            try:
                with job.scope:
                    if wait:
                        await anyio.sleep(wait)
                    await work()
            except Exception:  # a background job must never surface as an error
                log.exception("background work failed: %s", what)
            finally:
                job.ended()

        def task() -> None:  # an asyncio task of the loop's own, outside any task group
            made = asyncio.get_running_loop().create_task(run(0.0))
            self._tasks.add(made)
            made.add_done_callback(self._tasks.discard)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: a task group, or nothing
            if self._group is None:
                return None  # the caller does without
            self._group.start_soon(run, after)
        else:
            if after:
                # A timer, not a task that sleeps: most delayed jobs (a turn's keeper) are
                # stopped before they start, and a timer costs a fraction of a task. Its
                # callback runs outside any task, where anyio's task groups cannot start
                # one, so the job is an asyncio task (stopped by stop() and cancel() all
                # the same).
                def begin() -> None:
                    job.timer = None
                    task()

                job.timer = loop.call_later(after, begin)
            elif self._group is not None:
                self._group.start_soon(run, 0.0)
            else:
                task()
        (self._lasting if lasting else self._jobs).add(job)
        return job

    def _forget(self, job: Job) -> None:
        self._jobs.discard(job)
        self._lasting.discard(job)

    async def settle(self, within: float) -> None:
        """Wait for the jobs to finish, at most `within` seconds."""
        with anyio.move_on_after(within):
            while self._jobs:
                await next(iter(self._jobs)).done.wait()

    async def cancel(self) -> None:
        """Cancel every job and wait for it to end."""
        for job in [*self._jobs, *self._lasting]:
            await job.stop()


__all__ = ["Background", "Job"]
