"""The relay's HLS side: follows the source's segmentation, closes subtitle segments, publishes them.

A presentation is one source's run of segments: the floor's HLS source (or `--hls-master`)
followed segment by segment, or, for a source without a playlist, fixed slices of stream time.
Every half second the packager closes what is due (every floor final of speech begun
before a segment's end is out); each closed segment goes into the served
window, into the transcript database, and to the listeners (Redis, for the edges). The floor's
source ending closes what was heard and, once those last segments have been listed live for a
target duration, ends the presentation (`#EXT-X-ENDLIST`); the relay stopping ends it at once; a
source switch starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from relay.hls.follow import FollowError, PlaylistFollower, PlaylistUpdate, SourceSegment
from relay.hls.packager import MAX_WAIT_S, ClosedSegment, FixedSegmentation, SegmentSpan, SubtitlePackager
from relay.hls.playlist import MasterError, check_public
from relay.hls.pts import PtsMap
from relay.hls.saved import SavedSegments
from relay.hls.window import HlsWindow
from relay.redact import redact_url
from relay.tracks.model import TrackCaption

_LOGGER = logging.getLogger(__name__)

TICK_S = 0.5
FIXED_SEGMENT_S = 6.0  # without a source playlist: Apple's recommended segment length
_HTTP_SCHEMES = ("http", "https")
_AHEAD_SLACK_S = 30.0

Published = Callable[[HlsWindow, list[ClosedSegment], list[int]], None]


@dataclass(frozen=True, slots=True)
class HlsSettings:
    """Where the segmentation and the master come from."""

    source_url: str
    master_url: str | None = None  # --hls-master: the public master players load (default: the source)
    max_wait_s: float = MAX_WAIT_S
    fixed_segment_s: float = FIXED_SEGMENT_S


class HlsService:
    """Runs one presentation at a time for the floor; `window` is what the routes serve."""

    def __init__(self, langs: tuple[str, ...], pts: PtsMap, settings: HlsSettings,
                 saved: SavedSegments | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.langs = langs
        self._clock = clock
        self._pts = pts
        self._settings = settings
        self._saved = saved
        self.window: HlsWindow | None = None
        self.listeners: list[Published] = []
        self._packager: SubtitlePackager | None = None
        self._fixed: FixedSegmentation | None = None
        self._pending: deque[SourceSegment] = deque()  # followed, not yet placed on stream time
        self._placed: tuple[int, float] | None = None  # the last placed segment's (cc, end in stream time)
        self._floor_ended = False
        self._end_at: float | None = None  # monotonic time the ended presentation gets #EXT-X-ENDLIST
        self._source_key = ""
        self._follower_task: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None  # a presentation being started after a switch
        self._session: aiohttp.ClientSession | None = None

    def track(self, seq: int, track: TrackCaption) -> None:
        """A track caption the hub published as `seq`."""
        if self._packager is not None:
            self._packager.add_track(seq, track)

    async def run(self, progress: Callable[[], tuple[float, float]]) -> None:
        """Start a presentation for the first source, then close segments until cancelled.

        `progress()`: the floor's (through, processed) stream times: every final of speech
        begun before `through` is out; audio is heard up to `processed`.
        """
        self._session = aiohttp.ClientSession()
        try:
            await self.start_presentation(self._settings.source_url)
            while True:
                await asyncio.sleep(TICK_S)
                self.advance(*progress())
        finally:
            await self._stop_follower()
            await self._session.close()

    async def start_presentation(self, source_url: str) -> None:
        """A new source: follow its playlist (or slice stream time), resuming a saved presentation of it."""
        await self._stop_follower()
        follow_url = self._settings.master_url or (source_url if _is_http(source_url) else None)
        follower = await self._open_follower(follow_url) if follow_url else None
        self._source_key = _source_key(follower.url if follower else f"fixed:{source_url}")
        window = self._resumed() or HlsWindow(self.langs, secrets.token_hex(6))
        if follower is not None and follower.master is not None:
            window.master = follower.master
            self._check_master(window, source_url)
        elif follower is None:
            window.master, window.target_duration_s = None, round(self._settings.fixed_segment_s)
        self.window = window
        self._packager = SubtitlePackager(self.langs, self._pts, self._settings.max_wait_s, window.last_sn)
        self._pending.clear()
        self._placed = None
        self._floor_ended = False
        self._end_at = None
        if follower is None:
            self._fixed = FixedSegmentation(self._settings.fixed_segment_s)
            self._fixed.resume_after(window.last_sn)
        else:
            self._fixed = None
            self._follower_task = asyncio.create_task(follower.run())
        self._save(None)
        _LOGGER.info("HLS subtitle renditions %s for %s (presentation %s)", ", ".join(self.langs),
                     "following " + redact_url(follower.url) if follower else "in fixed segments",
                     window.presentation)

    def new_source(self, url: str, previous_through_s: float) -> None:
        """The floor switched sources: the old presentation ends with what was heard, a new one starts."""
        self.finish(previous_through_s)
        self._starting = asyncio.get_running_loop().create_task(self.start_presentation(url))

    def source_ended(self) -> None:
        """The floor's source ended, everything it said published: close what was heard, end the presentation."""
        self._floor_ended = True

    def finish(self, processed_s: float) -> None:
        """The relay stops (or leaves this source): close what was heard and end the presentation now."""
        self._floor_ended = True
        self.advance(processed_s, processed_s)
        self._end()

    def advance(self, through_s: float, processed_s: float) -> None:
        """Place followed segments on stream time, close those due."""
        if self._packager is None:
            return
        if self._fixed is not None:
            self._packager.add_spans(self._fixed.spans_through(processed_s))
        else:
            self._place_pending(processed_s)
        closed = self._close(through_s, processed_s, finishing=self._floor_ended)
        if self._floor_ended:
            self._end_when_listed(closed)

    def _end_when_listed(self, closed: bool) -> None:
        """End the presentation once its last segments have been listed live for a target duration.

        Players reloading a live playlist that gains its last segments and `#EXT-X-ENDLIST` in the
        same revision may never load those segments (hls.js 1.7 does not): the last words of a
        source would be lost to them. So the segments closed at the end are listed live first.
        """
        now = self._clock()
        if closed or self._end_at is None:
            assert self.window is not None
            self._end_at = now + (self.window.target_duration_s if closed else 0.0)
        if now >= self._end_at:
            self._end()

    def _close(self, through_s: float, processed_s: float, *, finishing: bool) -> bool:
        """Publish the segments due; whether there were any."""
        assert self._packager is not None and self.window is not None
        closed = self._packager.close_due(through_s, processed_s, finishing=finishing)
        if not closed:
            return False
        dropped: list[int] = []
        for segment in closed:
            dropped += self.window.add(segment)
            self._save(segment)
        self._tell(closed, dropped)
        return True

    def _end(self) -> None:
        window = self.window
        if window is None or window.ended:
            return
        window.ended = True
        self._save(None)
        self._tell([], [])
        _LOGGER.info("HLS presentation %s ended after segment %s", window.presentation, window.last_sn)

    async def _on_update(self, update: PlaylistUpdate) -> None:
        """A reload of the source's playlist (from the follower task)."""
        window = self.window
        if window is None:
            return
        window.target_duration_s = update.target_duration_s
        self._pending.extend(update.new)
        dropped = window.set_source_first_sn(update.first_sn)
        if dropped:
            self._tell([], dropped)

    def _place_pending(self, processed_s: float) -> None:
        """Give followed segments their span of stream time once the audio can tell where they are.

        A segment after a discontinuity waits until the relay hears past the one before it: its
        timestamps may have restarted, and only its own audio says where they now are.
        """
        assert self._packager is not None
        spans: list[SegmentSpan] = []
        while self._pending:
            segment = self._pending[0]
            if segment.start_tick is None:
                self._pending.popleft()  # never probed and nothing before it: it cannot be placed
                continue
            placed = self._placed
            if placed is not None and segment.cc != placed[0] and processed_s < placed[1]:
                break
            start_s = self._pts.stream_at(segment.start_tick)
            if start_s is None:
                break  # no audio heard yet
            self._pending.popleft()
            if start_s > processed_s + sum(later.duration_s for later in self._pending) + segment.duration_s + _AHEAD_SLACK_S:
                # Further ahead than the playlist reaches: a run of the source's clock from before
                # a restart (its ticks read as the future). No audio of it will be heard.
                _LOGGER.info("HLS segment %d is of an earlier run of the source's clock; left out", segment.sn)
                continue
            spans.append(SegmentSpan(segment.sn, start_s, segment.duration_s, segment.cc, segment.program_date_time))
            self._placed = (segment.cc, start_s + segment.duration_s)
        self._packager.add_spans(spans)

    def _resumed(self) -> HlsWindow | None:
        if self._saved is None:
            return None
        window = self._saved.load(self._source_key)
        if window is None or window.langs != self.langs:
            return None
        _LOGGER.info("HLS presentation %s resumed after segment %s", window.presentation, window.last_sn)
        return window

    def _check_master(self, window: HlsWindow, source_url: str) -> None:
        """A master fetched with credentials is not handed to viewers (its variants may carry them too)."""
        if self._settings.master_url:
            return
        try:
            check_public(source_url)
            if window.master is not None:
                check_public(window.master.base_url)
        except MasterError as exc:
            window.master, window.master_error = None, str(exc)
            _LOGGER.warning("HLS: no master playlist for players: %s", exc)

    async def _open_follower(self, url: str) -> PlaylistFollower | None:
        """A follower of `url`, or None when it is not an HLS playlist (an HTTP audio stream, say)."""
        assert self._session is not None
        follower = PlaylistFollower(url, self._session, self._on_update)
        try:
            await follower.open()
        except FollowError as exc:
            if url == self._settings.master_url or urlsplit(url).path.endswith(".m3u8"):
                _LOGGER.warning("HLS: %s; retrying", exc)
                return follower
            _LOGGER.info("HLS: the source is not a playlist (%s); subtitle segments of %.0f s",
                         exc, self._settings.fixed_segment_s)
            return None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            _LOGGER.warning("HLS: playlist %s unreachable for now; retrying", redact_url(url))
        return follower

    async def _stop_follower(self) -> None:
        task, self._follower_task = self._follower_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _save(self, segment: ClosedSegment | None) -> None:
        if self._saved is not None and self.window is not None:
            self._saved.save(self.window, self._source_key, segment)

    def _tell(self, closed: list[ClosedSegment], dropped: list[int]) -> None:
        assert self.window is not None
        for listener in self.listeners:
            listener(self.window, closed, dropped)


def _is_http(url: str) -> bool:
    return urlsplit(url).scheme.lower() in _HTTP_SCHEMES


def _source_key(url: str) -> str:
    """Names a source in the database without its address (which may hold a token)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]
