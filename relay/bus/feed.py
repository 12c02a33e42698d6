"""An edge's side: the event's Redis stream into the edge's own hub, and far resumes read from Redis.

Plain XREAD BLOCK on the one stream (every edge reads everything; no consumer groups). The
client's socket timeout is longer than BLOCK, and each read is also bounded by a timer: a Redis
that stalls or goes away is noticed within seconds, and the edge's viewers are told (every
channel "reconnecting") instead of silently freezing; when Redis answers again the edge reads on
from the last entry it delivered (nothing missed, nothing twice) and restores the channels'
states from the event's meta.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay.bus.stream import EventMeta, frame_of, frames_key, meta_key, parse_id, sent_of
from relay.hub import CaptionHub
from relay.messages import SourceState
from relay.protocol import Frame

_LOGGER = logging.getLogger(__name__)

BLOCK_MS = 2000
_READ_GRACE_S = 3.0  # a read taking BLOCK + this is a stalled Redis
_COUNT = 500  # entries per XRANGE/XREVRANGE page
_READ_COUNT = 64  # entries per XREAD: one write per viewer holds at most this many frames
_RING = 500  # finals read at start for the edge's memory ring
_META_CHECK_S = 2.0  # how often an edge reads the meta: the session, the relay's heartbeat
RELAY_SILENT_S = 10.0  # no heartbeat and no entry this long: the relay is gone


@dataclass(slots=True)
class FeedCounters:
    """What an edge has done since it started, across the event's sessions (for /metrics)."""

    delivered: int = 0  # stream entries delivered to the edge's hub
    failures: int = 0  # failed or stalled reads
    far_resumes: int = 0  # resumes read from the stream (beyond the memory ring)
    lag_s: float = 0.0  # the last caption's `sent` (at the relay) to its delivery at this edge


async def read_meta(redis: Redis, event: str) -> EventMeta | None:
    return EventMeta.from_hash(await redis.hgetall(meta_key(event)))


async def recent_finals(redis: Redis, key: str, count: int = _RING) -> tuple[list[Frame], str, Frame | None]:
    """The latest `count` finals (oldest first), the id of the stream's last entry ("0-0" if
    empty) and that entry's frame."""
    finals: list[Frame] = []
    last_id = "0-0"
    last: Frame | None = None
    upper = "+"
    while len(finals) < count:
        entries = await redis.xrevrange(key, max=upper, count=_COUNT)
        if not entries:
            break
        if last is None:
            last_id = entries[0][0].decode()
            last = frame_of(*entries[0])
        for entry_id, fields in entries:
            frame = frame_of(entry_id, fields)
            if frame.final:
                finals.append(frame)
        major, minor = parse_id(entries[-1][0])
        upper = f"({major}-{minor}"
    finals.reverse()
    return finals[-count:], last_id, last


class RedisBacklog:
    """The edge hub's `FinalsBacklog`: recent finals preloaded, older ones read from the stream."""

    def __init__(self, redis: Redis, key: str, recent: list[Frame], counters: FeedCounters) -> None:
        self._redis = redis
        self._key = key
        self._recent = recent
        self._counters = counters

    def append(self, frame: Frame) -> None:
        """Finals are kept by the relay (SQLite, then Redis); an edge keeps nothing itself."""

    def latest(self, count: int) -> list[Frame]:
        return self._recent[-count:]

    async def finals_since(self, seq: int, limit: int | None = None) -> list[Frame]:
        """Finals after `seq`, oldest first, at most `limit` (default 2,000), read with XRANGE."""
        wanted = 2000 if limit is None else limit
        self._counters.far_resumes += 1
        finals: list[Frame] = []
        lower = f"{seq + 1}-0"
        while len(finals) < wanted:
            entries = await self._redis.xrange(self._key, min=lower, count=_COUNT)
            if not entries:
                break
            finals += [frame for frame in (frame_of(i, f) for i, f in entries) if frame.final]
            major, minor = parse_id(entries[-1][0])
            lower = f"({major}-{minor}"
        return finals[:wanted]


class EdgeFeed:
    """Delivers one session's stream entries to `hub` in order, from `after_id`, until the event moves on."""

    def __init__(self, redis: Redis, event: str, meta: EventMeta, hub: CaptionHub, after_id: str,
                 counters: FeedCounters) -> None:
        self._redis = redis
        self._event = event
        self._session = meta.session
        self._key = frames_key(event, meta.session)
        self._hub = hub
        self._last_id = after_id
        self._states = dict(meta.states)
        self._counters = counters
        self._meta_checked = self._heard_at = time.monotonic()
        self._beat = meta.beat
        self.connected = True
        self.relay_silent = False
        self.last_entry_at: float | None = None  # time.time() of the last entry read

    @property
    def idle_s(self) -> float:
        """Seconds since this edge last read an entry (idle time, not the relay's publication lag)."""
        return 0.0 if self.last_entry_at is None else time.time() - self.last_entry_at

    async def run(self) -> EventMeta:
        """Deliver until the event's meta names another session (a relay started with a new
        event); then deliver what is left of this session's stream and return the new meta."""
        backoff = 0.5
        while True:
            try:
                entries = await asyncio.wait_for(
                    self._redis.xread({self._key: self._last_id}, block=BLOCK_MS, count=_READ_COUNT),
                    BLOCK_MS / 1000 + _READ_GRACE_S,
                )
                if not self.connected:
                    await self._recovered()
                backoff = 0.5
                self._deliver_entries(entries)
                moved = await self._check_meta()
                if moved is not None:
                    while entries := await self._redis.xread({self._key: self._last_id}, count=_READ_COUNT):
                        self._deliver_entries(entries)
                    return moved
            except (RedisError, OSError, asyncio.TimeoutError) as error:
                self._counters.failures += 1
                if self.connected:
                    _LOGGER.warning("Lost Redis (%s); viewers told the captions are reconnecting",
                                    type(error).__name__)
                    self.connected = False
                    self._tell_reconnecting()
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, 5.0)

    def _deliver_entries(self, entries: list | None) -> None:
        """Deliver one read's entries in order: captions together (one write per viewer), a status
        or end on its own, where it falls."""
        batch: list[Frame] = []
        for _key, items in entries or []:
            for entry_id, fields in items:
                frame = frame_of(entry_id, fields)
                self._heard(frame)
                if frame.seq is None and not frame.final:
                    self._hub.deliver_batch(batch)
                    batch = []
                    self._deliver_control(frame)
                else:
                    batch.append(frame)
                self._last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        self._hub.deliver_batch(batch)

    async def _check_meta(self) -> EventMeta | None:
        """Every couple of seconds: the event's meta if it names another session; meanwhile, tell
        viewers when the relay's heartbeat has stopped (a dead relay, not a quiet room) and when
        it is back."""
        now = time.monotonic()
        if now - self._meta_checked < _META_CHECK_S:
            return None
        self._meta_checked = now
        meta = await read_meta(self._redis, self._event)
        if meta is None:
            return None
        if meta.session != self._session:
            return meta
        if meta.beat != self._beat:
            self._beat, self._heard_at = meta.beat, now
        if self.relay_silent and now - self._heard_at < RELAY_SILENT_S:
            self.relay_silent = False
            _LOGGER.info("The relay is publishing again")
            self._restore_states(meta)
        elif not self.relay_silent and now - self._heard_at >= RELAY_SILENT_S and not self._hub.ended:
            self.relay_silent = True
            _LOGGER.warning("No word from the relay for %.0f s; viewers told the captions are reconnecting",
                            now - self._heard_at)
            self._tell_reconnecting()
        return None

    def _tell_reconnecting(self) -> None:
        for channel in self._hub.channels:
            self._hub.source_state(SourceState.RECONNECTING, channel)

    def _restore_states(self, meta: EventMeta | None) -> None:
        if meta is not None and meta.session == self._session:
            self._states.update(meta.states)
        for channel in self._hub.channels:
            self._hub.source_state(self._states.get(channel, SourceState.CONNECTED.value), channel)

    async def _recovered(self) -> None:
        self._restore_states(await read_meta(self._redis, self._event))
        self._heard_at = time.monotonic()
        self.connected = True
        _LOGGER.info("Redis is back; reading on after %s", self._last_id)

    def _heard(self, frame: Frame) -> None:
        self._heard_at = time.monotonic()
        self.last_entry_at = now = time.time()
        self._counters.delivered += 1
        sent = sent_of(frame.text)
        if sent is not None:
            self._counters.lag_s = max(0.0, now - sent)

    def _deliver_control(self, frame: Frame) -> None:
        """A frame that is not a caption: a channel's status, the session's end, anything else as is."""
        message = json.loads(frame.text)
        if message.get("type") == "status":
            if message.get("channel") in self._hub.channels:
                self._states[message["channel"]] = message["state"]
                self._hub.source_state(message["state"], message["channel"])
            return
        if message.get("type") == "end":
            self._hub.end_session(message.get("reason", ""))
            return
        self._hub.deliver(frame)
