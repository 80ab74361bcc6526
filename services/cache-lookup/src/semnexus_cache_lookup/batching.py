"""One model call at a time, and every request that queues meanwhile rides the next one.

:class:`ModelQueue` is how the service calls a model (the embedder, the pair
verifier): callers ``await queue.submit(items)`` from the event loop; the queue
runs the model in a worker thread on everything pending, up to ``max_batch``
items, and hands each caller its own rows of the result. Concurrent
micro-batches therefore never run one model side by side with itself: on two
cores, four parallel torch embedding calls took 60 ms each at 50 requests/s and
2 s each under load (BENCHMARKS.md, "Cache-lookup"), where one merged call took
about 10 ms for one text and 3 ms a text batched.

Each queue runs its model on a thread of its own, not on the event loop's
shared default executor: the queue makes one call at a time, so one thread
is all it can use, and the threads the service runs stay few (see
``cache.store_threads`` for the vector store's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

Item = TypeVar("Item")
Rows = npt.NDArray[Any]


class ModelQueue(Generic[Item]):
    """Serialises calls of ``model`` (items → one result row each) and merges waiting items."""

    def __init__(
        self,
        model: Callable[[list[Item]], Rows],
        *,
        empty: Rows,
        max_batch: int = 256,
        name: str = "model",
    ) -> None:
        self.model = model
        self.max_batch = max_batch
        self._empty = empty
        self._name = f"semnexus-{name}"
        self._pending: list[tuple[list[Item], asyncio.Future[Rows]]] = []
        self._running: asyncio.Task[None] | None = None
        # Started on the first call; its thread ends when the queue is collected.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)

    @property
    def idle(self) -> bool:
        """No model call is running or waiting: a new call would start at once."""
        return not self._pending and (self._running is None or self._running.done())

    async def submit(self, items: Sequence[Item]) -> Rows:
        """The result rows of ``items``, from the next model call (shared with other callers)."""
        if not items:
            return self._empty.copy()
        done: asyncio.Future[Rows] = asyncio.get_running_loop().create_future()
        self._pending.append((list(items), done))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._run(), name=self._name)
        return await done

    def _take(self) -> list[tuple[list[Item], asyncio.Future[Rows]]]:
        taken: list[tuple[list[Item], asyncio.Future[Rows]]] = []
        size = 0
        while self._pending and (not taken or size + len(self._pending[0][0]) <= self.max_batch):
            job = self._pending.pop(0)
            taken.append(job)
            size += len(job[0])
        return taken

    async def _run(self) -> None:
        taken: list[tuple[list[Item], asyncio.Future[Rows]]] = []
        try:
            while self._pending:
                taken = self._take()
                items = [item for job, _ in taken for item in job]
                try:
                    loop = asyncio.get_running_loop()
                    rows = await loop.run_in_executor(self._thread, self.model, items)
                except Exception as exc:  # noqa: BLE001  (handed to every caller of this call)
                    for _, done in taken:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                start = 0
                for job, done in taken:
                    if not done.done():
                        done.set_result(rows[start : start + len(job)])
                    start += len(job)
        finally:
            # Cancelled mid-call: no caller may wait forever.
            for _, done in [*taken, *self._pending]:
                if not done.done():
                    done.cancel()


def empty_rows(width: int | None, dtype: type[Any] = np.float32) -> Rows:
    """A zero-row result: ``(0, width)``, or ``(0,)`` for one value per item."""
    return np.zeros((0,) if width is None else (0, width), dtype=dtype)
