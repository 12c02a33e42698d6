"""Fan-out hub: numbers captions, keeps recent finals, sends each frame to every viewer.

Design (python-websockets' "broadcast" topic, built-in `broadcast()` flavour):
`publish()` encodes a caption once and offers the same `Frame` to every viewer
without awaiting. A viewer accepts it into its own bounded buffer or refuses
when that buffer is full; a refusing viewer is dropped with CLOSE_TOO_SLOW and
resumes later with `since`. Nobody waits for the slowest viewer.

One hub serves a whole event: the floor and its interpretation booths (every
caption names its `channel`) and the per-language tracks (`publish_track`), all
numbered in one `seq`, so one `since` resumes everything. Several servers could
each be fed already-encoded frames (e.g. from Redis) through `deliver()`, so
numbering and fan-out are kept apart.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from .messages import Caption, SourceState
from .protocol import (
    CLOSE_TOO_SLOW, ChannelInfo, Frame, Hello, encode_caption, encode_end, encode_status, encode_track,
)  # fmt: skip
from .replay import FinalsBacklog, MemoryBacklog, ReplayLimits, ReplaySource
from .tracks.model import TrackCaption

_LOGGER = logging.getLogger(__name__)

DEFAULT_LANGUAGES = ("en", "fr", "es")
__all__ = ["CaptionHub", "FinalsBacklog", "MemoryBacklog", "ReplayLimits", "Viewer"]


class Viewer(Protocol):
    """One connected viewer as the hub sees it."""

    def send(self, frame: Frame, *, replay: bool = False) -> bool:
        """Buffer `frame` without waiting; False when full. A `replay` frame may overfill by itself."""

    def send_batch(self, frames: Sequence[Frame], wire: bytes) -> bool:
        """Buffer several live frames at once (`wire`: their wire bytes joined); False when full."""

    async def drained(self) -> bool:
        """Wait until the buffer is under its limit; False if the connection is going away."""

    def drop(self, code: int, reason: str) -> None:
        """Close the connection soon with `code`; never waits."""


class CaptionHub:
    """Sequences and fans out the captions of an event's channels, and its language tracks, to viewers."""

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
        channels: Sequence[tuple[str, str | None]] | None = None,
        tracks: Sequence[str] = (),
    ) -> None:
        """With a durable `store`, pass its `last_seq` and `session`: a restarted relay numbers on, viewers resume.

        `channels`: the event's (name, booth language) pairs, the floor first with None
        (default: `[(channel, None)]`, a single-channel event). `tracks`: the languages of
        the tracks `publish_track` will send ("en", "fr", "es", "original"); empty when the
        event has no track composer (viewers then read the channel's finals and their
        translations, as in protocol 1).
        `label` names the floor's source to viewers (default: its channel's name); never put an address in it.
        `backlog` is the number of recent finals held in memory (the ring every replay is
        served from); `replay` bounds resumes further back and the bytes of any replay.
        """
        self.channels: dict[str, str | None] = dict(channels) if channels else {channel: None}
        if len(self.channels) != len(channels or [channel]):
            raise ValueError(f"channel names must be unique: {[name for name, _ in channels or []]}")
        self.channel = next(iter(self.channels))  # the floor
        self.tracks = tuple(tracks)
        self.label = label or self.channel
        self.languages = tuple(languages)
        self.session = session or secrets.token_hex(8)
        limits = replay or ReplayLimits()
        self._ring = MemoryBacklog(backlog)
        if store is not None:
            self._ring.extend(store.latest(backlog))
        self._store = store  # durable finals; the ring (filled by deliver) holds the recent ones
        self._replay = ReplaySource(self._ring, store, limits)
        self._max_pending = max_pending
        self._seq = last_seq
        self._live: set[Viewer] = set()
        # Viewers whose replay is under way: live frames wait here.
        self._replaying: dict[Viewer, list[Frame]] = {}
        self._states = {name: SourceState.CONNECTING.value for name in self.channels}
        self._ended: str | None = None
        self.dropped = 0  # viewers dropped as too slow since start, for /metrics
        self.resumes = 0  # viewers that resumed from their `since` (the rest started afresh)
        self.taps: list[Callable[[Frame], None]] = []  # told of every frame delivered (e.g. Redis)

    @property
    def store_reads(self) -> int:
        """Replays that had to read the durable backlog (the rest came from memory)."""
        return self._replay.store_reads

    @property
    def states(self) -> dict[str, str]:
        """Each channel's source state as viewers were last told."""
        return dict(self._states)

    @property
    def seq(self) -> int:
        """Sequence number of the last final published (0 before the first)."""
        return self._seq

    @property
    def ended(self) -> bool:
        """True once the session's end was delivered."""
        return self._ended is not None

    @property
    def viewer_count(self) -> int:
        """Viewers attached, live or replaying."""
        return len(self._live) + len(self._replaying)

    def publish(self, caption: Caption) -> int:
        """Send a caption of any of the event's channels to viewers; return its seq (a partial's: the next final's)."""
        if caption.channel not in self.channels:
            raise ValueError(f"caption for channel {caption.channel!r}; this hub has {', '.join(self.channels)}")
        return self._publish(encode_caption(caption, self._seq + 1))

    def publish_track(self, track: TrackCaption) -> int:
        """Send one caption of a language track (a final: numbered, kept, replayed); return its seq."""
        if track.lang not in self.tracks:
            raise ValueError(f"track caption for {track.lang!r}; this hub has tracks {self.tracks}")
        if track.channel not in self.channels:
            raise ValueError(f"track caption from channel {track.channel!r}; this hub has {', '.join(self.channels)}")
        return self._publish(encode_track(track, self._seq + 1))

    def _publish(self, frame: Frame) -> int:
        """Keep and number a final frame, then deliver any frame; return its seq."""
        seq = self._seq + 1
        if frame.final:
            # Kept before it is numbered as sent: if the store refuses it, no seq is spent.
            # (SqliteBacklog does not raise for a failing database: it keeps the final in memory.)
            if self._store is not None:
                self._store.append(frame)
            self._seq = seq
        self.deliver(frame)
        return seq

    def source_state(self, state: SourceState | str, channel: str | None = None) -> None:
        """Tell viewers what a channel's source is doing (default: the floor's), under a neutral label.

        Viewers are anonymous: they never get the source's address or any detail about it;
        the label is the floor's `label` or a booth channel's name.
        """
        name = self.channel if channel is None else channel
        if name not in self.channels:
            raise ValueError(f"state of channel {name!r}; this hub has {', '.join(self.channels)}")
        value = self._states[name] = SourceState(state).value
        _LOGGER.debug("Viewers told: source of %s %s", name, value)
        self.deliver(encode_status(name, value, self._label(name)))

    def _label(self, channel: str) -> str:
        """The neutral name viewers see for a channel's source."""
        return self.label if channel == self.channel else channel

    def end_session(self, reason: str = "") -> None:
        """Tell viewers the session is over; they stop reconnecting."""
        self._ended = reason
        _LOGGER.info("Session ended after final %d: %s", self._seq, reason)
        self.deliver(encode_end(self.channel, reason, self._seq))

    def deliver_batch(self, frames: Sequence[Frame]) -> None:
        """An edge's hub: frames read together from the stream, finals numbered elsewhere (each
        delivered once, in order), written to each live viewer in one go: at a saturated edge a
        read holds several entries and a viewer then costs one write for all of them, not one each."""
        fresh: list[Frame] = []
        for frame in frames:
            if frame.final:
                if frame.seq is None or frame.seq <= self._seq:
                    continue  # already delivered
                self._seq = frame.seq
                self._ring.append(frame)
            fresh.append(frame)
        if len(fresh) <= 1:
            for frame in fresh:
                self._offer(frame)
            return
        for tap in self.taps:
            for frame in fresh:
                tap(frame)
        wire = b"".join(frame.wire for frame in fresh)
        refused = [viewer for viewer in self._live if not viewer.send_batch(fresh, wire)]
        self._hold_for_replaying(fresh, refused)

    def deliver(self, frame: Frame) -> None:
        """Offer an encoded frame to every viewer; drop those whose buffer is full."""
        if frame.final and frame.seq is not None:
            self._ring.append(frame)
        self._offer(frame)

    def _offer(self, frame: Frame) -> None:
        for tap in self.taps:
            tap(frame)
        refused = [viewer for viewer in self._live if not viewer.send(frame)]
        self._hold_for_replaying([frame], refused)

    def _hold_for_replaying(self, frames: Sequence[Frame], refused: list[Viewer]) -> None:
        """Keep `frames` for viewers still replaying; drop them and the `refused` that are too far behind."""
        for viewer, pending in self._replaying.items():
            pending.extend(frames)
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
        self.resumes += resumed
        hello = Hello(
            session=self.session,
            channel=self.channel,
            languages=self.languages,
            seq=self._seq,
            since=start if resumed else None,
            resumed=resumed,
            source_state=self._states[self.channel],
            source_label=self.label,
            ended=self._ended,
            now=time.time(),
            channels=[ChannelInfo(name, lang, self._states[name]) for name, lang in self.channels.items()],
            tracks=self.tracks,
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

    def close_all(self, code: int, reason: str) -> None:
        """Detach every viewer and close its connection with `code` (not counted as dropped)."""
        viewers = [*self._live, *self._replaying]
        for viewer in viewers:
            self.detach(viewer)
            viewer.drop(code, reason)

    def _drop(self, viewer: Viewer, code: int, reason: str) -> None:
        """Detach a viewer and have its connection closed."""
        self.dropped += 1
        self.detach(viewer)
        _LOGGER.info("Dropping viewer (%d: %s); %d left", code, reason, self.viewer_count)
        viewer.drop(code, reason)
