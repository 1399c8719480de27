"""A background loop that commits wake and a clean stop ends (the checkpointer, the projector)."""

from __future__ import annotations

import asyncio
import contextlib


class BackgroundLoop:
    """Runs `_run` as a task; `_wake` lets commits cut its waits short."""

    name = "background-loop"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        # A flag as well as the cancel: Python 3.11's wait_for can swallow a cancellation that
        # arrives as the awaited event fires (https://github.com/python/cpython/issues/86296).
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        raise NotImplementedError
