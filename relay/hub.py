"""Fan-out hub: numbers captions, keeps recent finals, sends each frame to every viewer.

Design (python-websockets' "broadcast" topic, built-in `broadcast()` flavour):
`publish()` encodes a caption once and offers the same `Frame` to every viewer
without awaiting. A viewer accepts it into its own bounded buffer or refuses
when that buffer is full; a refusing viewer is dropped with CLOSE_TOO_SLOW and
resumes later with `since`. Nobody waits for the slowest viewer.

Later an event may have several channels (one hub each, the channel is in every
message) and several servers (each hub fed with already-encoded frames, e.g.
from Redis, through `deliver()`), so numbering and fan-out are kept apart.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Protocol

from .messages import Caption, SourceState
from .protocol import CLOSE_TOO_SLOW, Frame, Hello, encode_caption, encode_end, encode_status
from .replay import FinalsBacklog, MemoryBacklog, ReplayLimits, ReplaySource

_LOGGER = logging.getLogger(__name__)

DEFAULT_LANGUAGES = ("en", "fr", "es")
__all__ = ["CaptionHub", "FinalsBacklog", "MemoryBacklog", "ReplayLimits", "Viewer"]


class Viewer(Protocol):
    """One connected viewer as the hub sees it."""

    def send(self, frame: Frame, *, replay: bool = False) -> bool:
        """Buffer `frame` without waiting; False when full. A `replay` frame may overfill by itself."""

    async def drained(self) -> bool:
        """Wait until the buffer is under its limit; False if the connection is going away."""

    def drop(self, code: int, reason: str) -> None:
        """Close the connection soon with `code`; never waits."""


class CaptionHub:
    """Sequences and fans out the captions of one channel to its viewers."""

    def __init__(
        self,
        backlog: int = 500,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
        *,
        channel: str = "floor",
        store: FinalsBacklog | None = None,
        last_seq: int = 0,
        session: str | None = None,
        max_pending: int = 1000,
        label: str | None = None,
        replay: ReplayLimits | None = None,
    ) -> None:
        """With a durable `store`, pass its `last_seq` and `session`: a restarted relay numbers on, viewers resume.

        `label` names the source to viewers (default: the channel's name); never put an address in it.
        `backlog` is the number of recent finals held in memory (the ring every replay is
        served from); `replay` bounds resumes further back and the bytes of any replay.
        """
        self.channel = channel
        self.label = label or channel
        self.languages = tuple(languages)
        self.session = session or secrets.token_hex(8)
        limits = replay or ReplayLimits()
        self._ring = MemoryBacklog(backlog)
        if store is not None:
            self._ring.extend(store.latest(backlog))
        self._backlog: FinalsBacklog = store if store is not None else self._ring
        self._replay = ReplaySource(self._ring, store, limits)
        self._max_pending = max_pending
        self._seq = last_seq
        self._live: set[Viewer] = set()
        # Viewers whose replay is under way: live frames wait here.
        self._replaying: dict[Viewer, list[Frame]] = {}
        self._source_state = SourceState.CONNECTING.value
        self._ended: str | None = None
        self.dropped = 0  # viewers dropped as too slow since start, for /metrics

    @property
    def store_reads(self) -> int:
        """Replays that had to read the durable backlog (the rest came from memory)."""
        return self._replay.store_reads

    @property
    def seq(self) -> int:
        """Sequence number of the last final published (0 before the first)."""
        return self._seq

    @property
    def viewer_count(self) -> int:
        """Viewers attached, live or replaying."""
        return len(self._live) + len(self._replaying)

    def publish(self, caption: Caption) -> int:
        """Send a caption to every viewer; return its seq (a partial's is the next final's)."""
        if caption.channel != self.channel:
            raise ValueError(f"caption for channel {caption.channel!r} sent to hub {self.channel!r}")
        seq = self._seq + 1
        frame = encode_caption(caption, seq)
        if frame.final:
            # Kept before it is numbered as sent: if the backlog refuses it, no seq is spent.
            # (SqliteBacklog does not raise for a failing database: it keeps the final in memory.)
            self._backlog.append(frame)
            self._seq = seq
        self.deliver(frame)
        return seq

    def source_state(self, state: SourceState | str) -> None:
        """Tell viewers what the livestream source is doing (e.g. reconnecting), under the hub's neutral label.

        Viewers are anonymous: they never get the source's address or any detail about it.
        """
        self._source_state = SourceState(state).value
        _LOGGER.debug("Viewers told: source %s", self._source_state)
        self.deliver(encode_status(self.channel, self._source_state, self.label))

    def end_session(self, reason: str = "") -> None:
        """Tell viewers the session is over; they stop reconnecting."""
        self._ended = reason
        _LOGGER.info("Session ended after final %d: %s", self._seq, reason)
        self.deliver(encode_end(self.channel, reason, self._seq))

    def deliver(self, frame: Frame) -> None:
        """Offer an encoded frame to every viewer; drop those whose buffer is full."""
        if frame.final and frame.seq is not None:
            self._ring.append(frame)
        refused = [viewer for viewer in self._live if not viewer.send(frame)]
        for viewer, pending in self._replaying.items():
            pending.append(frame)
            if len(pending) > self._max_pending:
                refused.append(viewer)
        for viewer in refused:
            self._drop(viewer, CLOSE_TOO_SLOW, "too slow: reconnect with since")

    async def attach(self, viewer: Viewer, since: int | None = None, session: str | None = None) -> None:
        """Send hello and the finals after `since` (the recent ones on a first visit), then make `viewer` live.

        The replay is written as the viewer's buffer drains. Frames published meanwhile
        are held and sent after it, skipping what the replay already covered: no gap,
        no duplicate.
        """
        resumed = since is not None and session in (None, self.session) and since <= self._seq
        start = since if resumed and since is not None else 0
        hello = Hello(
            session=self.session,
            channel=self.channel,
            languages=self.languages,
            seq=self._seq,
            since=start if resumed else None,
            resumed=resumed,
            source_state=self._source_state,
            source_label=self.label,
            ended=self._ended,
            now=time.time(),
        )
        if not viewer.send(hello.encode(), replay=True):
            viewer.drop(CLOSE_TOO_SLOW, "could not send hello")
            return
        pending: list[Frame] = []
        self._replaying[viewer] = pending
        try:
            replay = await self._replay.frames(start if resumed else None, self._seq)
            last = await self._send_replay(viewer, replay, start, pending)
            while last is not None and pending:
                held = pending.copy()
                pending.clear()
                last = await self._send_replay(viewer, held, last, pending)
        finally:
            still_attached = self._replaying.pop(viewer, None) is pending
        if still_attached and last is not None:
            self._live.add(viewer)  # no await since `pending` was found empty: nothing slips by

    def detach(self, viewer: Viewer) -> None:
        """Forget a viewer whose connection ended."""
        self._live.discard(viewer)
        self._replaying.pop(viewer, None)

    async def _send_replay(
        self, viewer: Viewer, frames: Iterable[Frame], last: int, pending: list[Frame]
    ) -> int | None:
        """Send `frames` in order as the viewer drains, skipping finals up to `last`; the new last, or None if gone."""
        for frame in frames:
            if frame.seq is not None and frame.seq <= last:
                continue  # already covered: a duplicate final, or a partial of a sent final
            drained = await viewer.drained()
            if self._replaying.get(viewer) is not pending:
                return None  # dropped or detached while waiting
            if not drained or not viewer.send(frame, replay=True):
                self._drop(viewer, CLOSE_TOO_SLOW, "too slow during replay")
                return None
            if frame.final and frame.seq is not None:
                last = frame.seq
        return last

    def _drop(self, viewer: Viewer, code: int, reason: str) -> None:
        """Detach a viewer and have its connection closed."""
        self.dropped += 1
        self.detach(viewer)
        _LOGGER.info("Dropping viewer (%d: %s); %d left", code, reason, self.viewer_count)
        viewer.drop(code, reason)
