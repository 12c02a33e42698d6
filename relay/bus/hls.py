"""The HLS subtitle renditions on Redis: written by the transcribing relay, served by the edges.

One hash per event and session, `relay:{event}:{session}:hls`: the field `state` holds the
served window's state (`HlsWindow.state()`: its segments' numbers and spans, the master, whether
it ended) and each segment's WebVTT file is the field `{presentation}/{lang}/{sn}`. The relay
renders every segment once; edges serve those very bytes, so a segment is the same from any
edge (a CDN may fetch it from any of them). Segments that left the window are deleted.

The relay writes after each closed segment (what Redis lacks, then the state: an edge never
sees a segment listed before its files are there); after an outage it writes the whole window
again. An edge reads the state every second and fetches the files of new segments.
"""

from __future__ import annotations

import asyncio
import json
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay.hls.packager import ClosedSegment
from relay.hls.window import HlsWindow

_LOGGER = logging.getLogger(__name__)

STATE_FIELD = "state"
POLL_S = 1.0


def hls_key(event: str, session: str) -> str:
    return f"relay:{event}:{session}:hls"


def _field(presentation: str, lang: str, sn: int) -> str:
    return f"{presentation}/{lang}/{sn}"


class HlsRedisPublisher:
    """Keeps the hash equal to the relay's window (a listener of HlsService; writes on its own task)."""

    def __init__(self, redis: Redis, event: str, session: str) -> None:
        self._redis = redis
        self._key = hls_key(event, session)
        self._window: HlsWindow | None = None
        self._written: set[str] = set()  # body fields Redis has, as far as we know
        self._wake = asyncio.Event()
        self.failures = 0

    def changed(self, window: HlsWindow, closed: list[ClosedSegment], dropped: list[int]) -> None:
        """The window changed (a listener: never waits)."""
        self._window = window
        self._wake.set()

    async def run(self) -> None:
        """Write whenever the window changes, until cancelled; Redis trouble is retried."""
        backoff = 0.5
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._write()
                backoff = 0.5
            except (RedisError, OSError) as error:
                self.failures += 1
                _LOGGER.info("HLS segments not written to Redis (%s); again shortly", type(error).__name__)
                self._written.clear()  # Redis may have lost them: write the whole window again
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._wake.set()

    async def _write(self) -> None:
        window = self._window
        if window is None:
            return
        wanted = {
            _field(window.presentation, lang, span.sn): body
            for span in window.segments for lang in window.langs
            if (body := window.body(lang, window.presentation, span.sn)) is not None
        }
        missing = {name: body for name, body in wanted.items() if name not in self._written}
        gone = [name for name in self._written if name not in wanted]
        pipe = self._redis.pipeline(transaction=False)
        if missing:
            pipe.hset(self._key, mapping=missing)
        pipe.hset(self._key, STATE_FIELD, json.dumps(window.state(), ensure_ascii=False))
        if gone:
            pipe.hdel(self._key, *gone)
        await pipe.execute()
        self._written = (self._written | set(missing)) - set(gone)

    async def drained(self) -> None:
        """Wait until the last change is written (for a clean stop)."""
        while self._wake.is_set():
            await asyncio.sleep(0.05)


class HlsRedisReader:
    """An edge's copy of the relay's window, read from the hash every second."""

    def __init__(self, redis: Redis, event: str, session: str) -> None:
        self._redis = redis
        self._key = hls_key(event, session)
        self.window: HlsWindow | None = None
        self._state_json: bytes | None = None
        self._bodies: dict[tuple[str, int], bytes] = {}

    async def run(self) -> None:
        """Follow the hash until cancelled (Redis trouble: the edge serves what it has, and retries)."""
        while True:
            try:
                await self.refresh()
            except (RedisError, OSError, ValueError) as error:
                _LOGGER.debug("HLS state not read from Redis: %s", type(error).__name__)
            await asyncio.sleep(POLL_S)

    async def refresh(self) -> None:
        """Read the state; if it changed, fetch the files of its new segments and serve the new window."""
        raw = await self._redis.hget(self._key, STATE_FIELD)
        if raw is None or raw == self._state_json:
            return
        state = json.loads(raw)
        presentation = state["presentation"]
        wanted = [(lang, segment[0]) for segment in state["segments"] for lang in state["langs"]]
        kept = {key: self._bodies[key] for key in wanted if key in self._bodies and self._presentation(state)}
        missing = [key for key in wanted if key not in kept]
        if missing:
            values = await self._redis.hmget(self._key, [_field(presentation, lang, sn) for lang, sn in missing])
            kept.update({key: value for key, value in zip(missing, values) if value is not None})
        self.window = HlsWindow.from_state(state, kept)
        self._bodies = kept
        self._state_json = raw

    def _presentation(self, state: dict) -> bool:
        return self.window is not None and self.window.presentation == state["presentation"]
