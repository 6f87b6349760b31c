"""A dynamic batcher: the serving loop a deployed classifier runs behind its request queue.

Requests (LoadGen's query samples) join one queue. Each worker takes the
oldest waiting request, then gathers more until the batch holds
`max_batch_size` or the oldest has waited `max_queue_delay_s`, whichever
comes first, runs the batch and answers every request in it. That is how
Triton's and TorchServe's dynamic batchers form batches: a full batch
runs at once (so with `max_batch_size=1` nothing ever waits), a partial
one only once its oldest request can wait no longer.

The batcher knows nothing of LoadGen or of a framework: it calls
`run_batch(n)` to compute a batch of n and `respond(ids)` to answer. The
serving scenario (`dlmark.scenarios.serving_child`) wires those to the
backend's synchronised call and to `QuerySamplesComplete`.
"""

from __future__ import annotations

import collections
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass(frozen=True)
class BatcherSettings:
    max_batch_size: int
    max_queue_delay_s: float
    workers: int = 1
    only_largest: bool = False  # Offline: every batch but the last is full; build for that size alone

    def padded_sizes(self) -> list[int]:
        """The batch sizes the model is built for: powers of two below the largest, and the largest.

        A batch of n runs at the smallest of them that holds it, padded, as
        TF Serving's `allowed_batch_sizes` pads: a model built for every
        size up to 32 would hold 32 copies of its plans (MXNet plans a
        network's memory per input shape).
        """
        if self.only_largest:
            return [self.max_batch_size]
        sizes, size = [], 1
        while size < self.max_batch_size:
            sizes.append(size)
            size *= 2
        return [*sizes, self.max_batch_size]

    def padded(self, n: int) -> int:
        return next(size for size in self.padded_sizes() if size >= n)


class DynamicBatcher:
    """One request queue, `workers` threads forming and running batches from it.

    A batch that raises sets `error` (the first one kept), and from then on
    requests are answered without being computed, so that LoadGen's run
    ends rather than waits forever; the caller checks `error` and records
    the run as failed, never as served.
    """

    def __init__(
        self, settings: BatcherSettings, run_batch: Callable[[int], None], respond: Callable[[list[int]], None]
    ) -> None:
        self.settings = settings
        self._run_batch = run_batch
        self._respond = respond
        self._queue: collections.deque[tuple[int, float]] = collections.deque()  # (id, arrival)
        self._ready = threading.Condition()
        self._stopping = False
        self.error: str | None = None
        self.batch_sizes: collections.Counter[int] = collections.Counter()  # how many batches of each size ran
        self._threads = [
            threading.Thread(target=self._work, name=f"dlmark-batcher-{i}", daemon=True)
            for i in range(settings.workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, ids: Iterable[int]) -> None:
        """Queue requests; called from LoadGen's issuing thread, so it only enqueues."""
        now = time.monotonic()
        with self._ready:
            self._queue.extend((i, now) for i in ids)
            self._ready.notify_all()

    def _next_batch(self) -> list[int] | None:
        """The next batch to run, waiting as the batching rule says; None once stopped."""
        size, delay = self.settings.max_batch_size, self.settings.max_queue_delay_s
        with self._ready:
            while True:
                if self._stopping:
                    return None
                if len(self._queue) >= size:
                    break
                if self._queue:
                    left = self._queue[0][1] + delay - time.monotonic()
                    if left <= 0:
                        break
                    self._ready.wait(left)
                else:
                    self._ready.wait()
            return [self._queue.popleft()[0] for _ in range(min(size, len(self._queue)))]

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            if self.error is None:
                try:
                    self._run_batch(len(batch))
                    self.batch_sizes[len(batch)] += 1
                except BaseException as exc:  # kept for the caller, which records it
                    self.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
            self._respond(batch)

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify_all()

    def close(self) -> None:
        self.stop()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
