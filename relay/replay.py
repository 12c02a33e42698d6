"""What a connecting viewer is replayed: a memory ring of recent finals, one shared read further back.

Nearly every replay (a first visit, a reconnect after a short drop or a restart) is
served from the ring without touching the database. Only a resume from further back
than the ring reads the durable backlog, and identical concurrent reads share one
query, so a crowd reconnecting at once costs one read, not one per viewer.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .protocol import Frame


class FinalsBacklog(Protocol):
    """Where finals are kept for replay (memory, or a database for the whole event)."""

    def append(self, frame: Frame) -> None:
        """Keep a final (frames arrive with increasing `seq`)."""

    async def finals_since(self, seq: int, limit: int | None = None) -> Sequence[Frame]:
        """Return up to `limit` kept finals whose seq is greater than `seq`, oldest first."""

    def latest(self, count: int) -> Sequence[Frame]:
        """Return the last `count` kept finals, oldest first (read once, at start-up)."""


class MemoryBacklog:
    """The last `maxlen` finals in a bounded deque; seqs in it are always consecutive."""

    def __init__(self, maxlen: int) -> None:
        self._frames: collections.deque[Frame] = collections.deque(maxlen=maxlen)

    def append(self, frame: Frame) -> None:
        """Keep a final, forgetting the oldest when full; a final already kept is ignored."""
        assert frame.seq is not None
        last = self._frames[-1].seq if self._frames else None
        if last is not None and frame.seq <= last:
            return
        if last is not None and frame.seq != last + 1:
            self._frames.clear()  # a jump: keep the slice arithmetic exact
        self._frames.append(frame)

    def extend(self, frames: Sequence[Frame]) -> None:
        """Keep `frames` (oldest first)."""
        for frame in frames:
            self.append(frame)

    @property
    def first_seq(self) -> int | None:
        """Seq of the oldest kept final, None when empty."""
        return self._frames[0].seq if self._frames else None

    def since(self, seq: int) -> list[Frame]:
        """Kept finals after `seq` (a slice: seqs are consecutive)."""
        first = self.first_seq
        if first is None:
            return []
        return list(itertools.islice(self._frames, max(0, seq - first + 1), None))

    async def finals_since(self, seq: int, limit: int | None = None) -> Sequence[Frame]:
        """Kept finals after `seq`, at most `limit`."""
        frames = self.since(seq)
        return frames if limit is None else frames[:limit]

    def latest(self, count: int) -> list[Frame]:
        """The last `count` kept finals."""
        return list(self._frames)[-count:] if count > 0 else []

    def __len__(self) -> int:
        return len(self._frames)


@dataclass(frozen=True, slots=True)
class ReplayLimits:
    """How much a connecting viewer is replayed."""

    resume_finals: int = 2000  # most finals a resume gets; anything older shows as a gap in seq
    replay_bytes: int = 2 * 1024 * 1024  # most bytes of finals in one replay (the newest are kept)


class ReplaySource:
    """Plans replays from the ring, reading the durable backlog only for what the ring lacks."""

    def __init__(self, ring: MemoryBacklog, store: FinalsBacklog | None, limits: ReplayLimits) -> None:
        self._ring = ring
        self._store = store
        self._limits = limits
        self._reads: dict[tuple[int, int], asyncio.Future[Sequence[Frame]]] = {}
        self.store_reads = 0  # queries actually run, for tests and diagnostics

    async def frames(self, since: int | None, last_seq: int) -> list[Frame]:
        """The finals to replay: after `since` for a resume, the ring for a first visit (None)."""
        ring = self._ring
        if since is None:
            return self._within_bytes(ring.since(0))
        start = max(since, last_seq - self._limits.resume_finals)
        first = ring.first_seq
        if first is not None and start >= first - 1:
            return self._within_bytes(ring.since(start))
        recent = ring.since(0)  # taken now: the ring may move on while the store is read
        upto = first - 1 if first is not None else last_seq
        if self._store is None or upto <= start:
            return self._within_bytes(recent)
        older = await self._shared_read(start, upto - start)
        return self._within_bytes([*older, *recent])

    async def _shared_read(self, after: int, limit: int) -> Sequence[Frame]:
        """Read the store once for every viewer asking for the same range at the same time."""
        key = (after, limit)
        read = self._reads.get(key)
        if read is None:
            assert self._store is not None
            self.store_reads += 1
            read = asyncio.ensure_future(self._store.finals_since(after, limit))
            self._reads[key] = read
            read.add_done_callback(lambda _: self._reads.pop(key, None))
        return await asyncio.shield(read)  # a viewer leaving must not cancel the others' read

    def _within_bytes(self, frames: list[Frame]) -> list[Frame]:
        """The newest `frames` whose wire bytes fit the replay budget."""
        budget = self._limits.replay_bytes
        for index in range(len(frames) - 1, -1, -1):
            budget -= len(frames[index].wire)
            if budget < 0:
                return frames[index + 1 :]
        return frames
