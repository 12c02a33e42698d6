"""The transcribing relay's side: every frame its hub delivers, copied to the event's Redis stream.

The hub hands each frame to `offer()` (no waiting: a queue); one task writes them in order, a
pipeline of XADDs per round trip. Finals are in SQLite first (the hub keeps them before it numbers
them), so Redis is a copy that may fall behind: while Redis is down the relay goes on captioning
and serving its own viewers; when Redis is back the publisher looks at the stream's last entry,
republishes from SQLite every final Redis does not have (all of them if Redis lost its data), and
goes on with what queued meanwhile, finals Redis now has skipped. A final is never added twice
(its entry id is its seq; Redis refuses an id not above the last). Every couple of seconds it
also rewrites a heartbeat in the event's meta, so edges can tell a quiet room from a dead relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from relay.bus.stream import BEAT_FIELD, BEAT_S, EventMeta, entry_fields, frames_key, meta_key, parse_id
from relay.protocol import Frame
from relay.redact import redact_url

_LOGGER = logging.getLogger(__name__)

_BATCH = 200  # XADDs per round trip
_REPUBLISH_PAGE = 500
_MAX_QUEUED = 20_000  # frames waiting while Redis is down; beyond, the oldest non-finals go


class FinalsSource(Protocol):
    """Where finals Redis missed are read back from (the relay's SQLite backlog)."""

    async def finals_since(self, seq: int, limit: int | None = None) -> list[Frame]: ...


class RedisPublisher:
    """Copies the hub's frames to `relay:{event}:{session}:frames` and keeps the event's meta."""

    def __init__(self, redis: Redis, event: str, meta: EventMeta, finals: FinalsSource | None,
                 url_for_logs: str = "") -> None:
        self._redis = redis
        self._event = event
        self._meta = meta
        self._key = frames_key(event, meta.session)
        self._finals = finals
        self._where = redact_url(url_for_logs) if url_for_logs else "Redis"
        self._queue: deque[Frame] = deque()
        self._wake = asyncio.Event()
        self._last_final = 0  # the stream's last final seq
        self._minor = 0  # the stream's last entry after it
        self.connected = False
        self._writing = False  # a batch is on its way to Redis
        self._beaten = 0.0  # time.monotonic() of the last heartbeat written
        self.published = 0
        self.republished = 0
        self.failures = 0

    @property
    def stream_seq(self) -> int:
        """The last final written to the stream."""
        return self._last_final

    @property
    def queued(self) -> int:
        """Frames waiting to be written."""
        return len(self._queue)

    def offer(self, frame: Frame) -> None:
        """Queue a frame the hub delivered (a hub tap: called on the event loop, never waits)."""
        if frame.seq is None and not frame.final and frame.text.startswith(b'{"type":"status"'):
            status = json.loads(frame.text)
            self._meta.states[status["channel"]] = status["state"]
        self._queue.append(frame)
        if len(self._queue) > _MAX_QUEUED:
            self._shed()
        self._wake.set()

    async def drained(self) -> None:
        """Wait until everything offered so far is in Redis (for a clean stop)."""
        while self._queue or self._writing or not self.connected:
            await asyncio.sleep(0.05)

    async def run(self) -> None:
        """Publish until cancelled, reconnecting with backoff; never raises for Redis trouble."""
        backoff = 0.5
        while True:
            try:
                await self._catch_up()
                if not self.connected:
                    _LOGGER.info("Publishing captions to %s (event %s)", self._where, self._event)
                self.connected, backoff = True, 0.5
                while True:
                    await self._flush()
                    since_beat = time.monotonic() - self._beaten
                    if since_beat >= BEAT_S:
                        await self._beat()  # a quiet room is then not taken for a dead relay
                        since_beat = 0.0
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), BEAT_S - since_beat)
                    self._wake.clear()
            except (RedisError, OSError) as error:
                self.failures += 1
                if self.connected:
                    _LOGGER.warning("Lost %s (%s); captions go on, published again when it is back",
                                    self._where, type(error).__name__)
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _beat(self) -> None:
        await self._redis.hset(meta_key(self._event), BEAT_FIELD, repr(time.time()))
        self._beaten = time.monotonic()

    async def _catch_up(self) -> None:
        """Write the meta, find where the stream is, republish the finals it lacks."""
        await self._redis.hset(meta_key(self._event), mapping={**self._meta.to_hash(), BEAT_FIELD: repr(time.time())})
        self._beaten = time.monotonic()
        last = await self._redis.xrevrange(self._key, count=1)
        self._last_final, self._minor = parse_id(last[0][0]) if last else (0, 0)
        if self._finals is not None:
            while True:
                page = await self._finals.finals_since(self._last_final, _REPUBLISH_PAGE)
                if not page:
                    break
                await self._write(list(page))
                self.republished += len(page)
        # Queued meanwhile: finals Redis now has, and partials of them, are stale.
        self._queue = deque(f for f in self._queue if f.seq is None or f.seq > self._last_final)

    async def _flush(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
            self._writing = True
            try:
                await self._write(batch)
            except BaseException:
                self._queue.extendleft(reversed(batch))
                raise
            finally:
                self._writing = False

    async def _write(self, frames: list[Frame]) -> None:
        """XADD `frames` in order in one round trip; finals Redis already has are skipped."""
        pipe = self._redis.pipeline(transaction=False)
        last_final, minor = self._last_final, self._minor
        queued = 0
        for frame in frames:
            if frame.final and frame.seq is not None:
                if frame.seq <= last_final:
                    continue
                last_final, minor = frame.seq, 0
            else:
                minor += 1
            pipe.xadd(self._key, entry_fields(frame), id=f"{last_final}-{minor}")
            queued += 1
        if any(not f.final and f.text.startswith(b'{"type":"status"') for f in frames):
            pipe.hset(meta_key(self._event), "states", json.dumps(self._meta.states))
        if not queued:
            return
        results = await pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, ResponseError) and "equal or smaller" not in str(result):
                raise result
            if isinstance(result, (RedisError, OSError)) and not isinstance(result, ResponseError):
                raise result
        self._last_final, self._minor = last_final, minor
        self.published += queued

    def _shed(self) -> None:
        """Too much queued while Redis is down: drop the oldest partials (finals are in SQLite)."""
        kept: deque[Frame] = deque()
        excess = len(self._queue) - _MAX_QUEUED
        for frame in self._queue:
            if excess > 0 and not frame.final and frame.seq is not None:
                excess -= 1
                continue
            kept.append(frame)
        self._queue = kept
