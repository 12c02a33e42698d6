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

import collections
import itertools
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Protocol

from .messages import Caption, SourceState
from .protocol import CLOSE_TOO_SLOW, Frame, Hello, encode_caption, encode_end, encode_status

_LOGGER = logging.getLogger(__name__)

DEFAULT_LANGUAGES = ("en", "fr", "es")


class Viewer(Protocol):
    """One connected viewer as the hub sees it."""

    def send(self, frame: Frame, *, replay: bool = False) -> bool:
        """Buffer `frame` without waiting; False when full. A `replay` (bounded by the backlog) may overfill."""

    def drop(self, code: int, reason: str) -> None:
        """Close the connection soon with `code`; never waits."""


class FinalsBacklog(Protocol):
    """Where recent finals are kept for replay (memory now, a database later)."""

    def append(self, frame: Frame) -> None:
        """Keep a final (frames arrive with increasing `seq`)."""

    async def finals_since(self, seq: int) -> Sequence[Frame]:
        """Return the kept finals whose seq is greater than `seq`, oldest first."""


class MemoryBacklog:
    """The last `maxlen` finals in a bounded deque."""

    def __init__(self, maxlen: int) -> None:
        self._frames: collections.deque[Frame] = collections.deque(maxlen=maxlen)

    def append(self, frame: Frame) -> None:
        """Keep a final, forgetting the oldest when full."""
        self._frames.append(frame)

    async def finals_since(self, seq: int) -> Sequence[Frame]:
        """Return kept finals after `seq`; seqs are consecutive so this is a slice."""
        if not self._frames:
            return []
        first = self._frames[0].seq
        assert first is not None
        skip = max(0, seq - first + 1)
        return list(itertools.islice(self._frames, skip, None))

    def __len__(self) -> int:
        return len(self._frames)


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
    ) -> None:
        """With a durable `store`, pass its `last_seq` and `session`: a restarted relay numbers on, viewers resume.

        `label` names the source to viewers (default: the channel's name); never put an address in it.
        """
        self.channel = channel
        self.label = label or channel
        self.languages = tuple(languages)
        self.session = session or secrets.token_hex(8)
        self._backlog: FinalsBacklog = store if store is not None else MemoryBacklog(backlog)
        self._max_pending = max_pending
        self._seq = last_seq
        self._live: set[Viewer] = set()
        # Viewers whose backlog replay is under way: live frames wait here.
        self._replaying: dict[Viewer, list[Frame]] = {}
        self._source_state = SourceState.CONNECTING.value
        self._ended: str | None = None
        self.dropped = 0  # viewers dropped as too slow since start, for /metrics

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
        refused = [viewer for viewer in self._live if not viewer.send(frame)]
        for viewer, pending in self._replaying.items():
            pending.append(frame)
            if len(pending) > self._max_pending:
                refused.append(viewer)
        for viewer in refused:
            self._drop(viewer, CLOSE_TOO_SLOW, "too slow: reconnect with since")

    async def attach(self, viewer: Viewer, since: int | None = None, session: str | None = None) -> None:
        """Send hello and the finals after `since`, then make `viewer` live.

        Frames published while the backlog is read are held and sent after it,
        skipping what the replay already covered: no gap, no duplicate.
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
            replay = await self._backlog.finals_since(start)
        finally:
            still_attached = self._replaying.pop(viewer, None) is pending
        if still_attached:
            self._go_live(viewer, replay, pending, start)

    def detach(self, viewer: Viewer) -> None:
        """Forget a viewer whose connection ended."""
        self._live.discard(viewer)
        self._replaying.pop(viewer, None)

    def _go_live(self, viewer: Viewer, replay: Sequence[Frame], pending: list[Frame], start: int) -> None:
        """Send replayed finals then held frames in order, skipping what was already sent."""
        last = start
        for frame in itertools.chain(replay, pending):
            if frame.seq is not None and frame.seq <= last:
                continue  # already covered: a duplicate final, or a partial of a sent final
            if not viewer.send(frame, replay=True):
                self._drop(viewer, CLOSE_TOO_SLOW, "too slow during replay")
                return
            if frame.final and frame.seq is not None:
                last = frame.seq
        self._live.add(viewer)

    def _drop(self, viewer: Viewer, code: int, reason: str) -> None:
        """Detach a viewer and have its connection closed."""
        self.dropped += 1
        self.detach(viewer)
        _LOGGER.info("Dropping viewer (%d: %s); %d left", code, reason, self.viewer_count)
        viewer.drop(code, reason)
