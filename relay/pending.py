"""Finals a failing transcript database has not taken yet, kept in order and retried off the event loop."""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import sqlite3
import threading
from collections.abc import Callable

from .protocol import Frame

_LOGGER = logging.getLogger(__name__)


class PendingFinals:
    """Finals the database has not taken yet, in order, and the thread that retries them.

    Invariant: while any final waits, every later one waits behind it (never written
    first), so the transcript has no gap. The failure is logged once, and its end once.
    """

    def __init__(self, write: Callable[[Frame], None], retry_s: float) -> None:
        self._write = write
        self._retry_s = retry_s
        self._frames: collections.deque[Frame] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._retrier = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="relay-store-retry")
        self.failures = 0
        self.error: str | None = None

    @property
    def count(self) -> int:
        return len(self._frames)

    def write(self, frame: Frame) -> None:
        """Write `frame` now, or queue it behind the waiting ones (and nudge the retry thread)."""
        with self._lock:
            waiting = bool(self._frames)
            if waiting:
                self._frames.append(frame)
        if waiting:
            self._wake.set()  # the database may be back: try again now rather than at the next tick
            return
        try:
            self._write(frame)
        except sqlite3.Error as error:
            with self._lock:
                self._frames.append(frame)
            self.failures += 1
            self.error = str(error)
            _LOGGER.error(
                "Transcript database failing (%s): captions go on, finals wait in memory and are retried", error
            )
            self._retrier.submit(self._retry_until_written)

    def _retry_until_written(self) -> None:
        """Retry the waiting finals, oldest first, until all are written or the backlog closes."""
        while not self._flush():
            if self._closing:
                return
            self._wake.wait(self._retry_s)
            self._wake.clear()

    def _flush(self) -> bool:
        """Write waiting finals in order; True once none waits."""
        written = 0
        while True:
            with self._lock:
                if not self._frames:
                    break
                frame = self._frames[0]
            try:
                self._write(frame)
            except sqlite3.Error as error:
                self.error = str(error)
                return False
            with self._lock:
                self._frames.popleft()  # only now: a new final queues behind it meanwhile
            written += 1
        if written:
            self.error = None
            _LOGGER.warning("Transcript database works again: %d waiting finals written", written)
        return True

    def close(self) -> None:
        """Stop retrying after one last attempt; say what could not be written."""
        self._closing = True
        self._wake.set()
        self._retrier.shutdown(wait=True)
        if not self._flush():
            first, last = self._frames[0].seq, self._frames[-1].seq
            _LOGGER.error(
                "Transcript database still failing (%s): finals %s-%s were not written", self.error, first, last
            )
