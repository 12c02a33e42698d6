"""Follows the source's HLS media playlist, as a player would: its segments, and where each starts.

The subtitle renditions mirror the video's segmentation (same media sequence numbers, durations,
discontinuities and program date-times): players line renditions up by sequence number. What
the playlist does not say is where each segment starts on the presentation clock; the first
kilobytes of the segment do (the first packet's PTS), so each new segment is fetched that far
(a ranged request) and probed. A segment that cannot be probed starts where the one before it
ended. The source's master (or the media playlist itself) is kept to be republished with the
subtitle renditions added.

Errors are logged once per kind with the address redacted; the follower retries with backoff
and never raises for network trouble.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import av
import m3u8

from relay.hls.pts import TICK_WRAP, seconds_to_ticks
from relay.hls.window import MasterSource
from relay.redact import redact_url

_LOGGER = logging.getLogger(__name__)

PROBE_BYTES = 64 * 1024  # enough for the first packets of every stream of a TS or fMP4 segment
_PROBE_PACKETS = 32
_TIMEOUT = aiohttp.ClientTimeout(total=15, sock_read=10)
_MAX_PLAYLIST_BYTES = 4 * 1024 * 1024


class FollowError(RuntimeError):
    """The playlist cannot be read (one line, address redacted)."""


@dataclass(frozen=True, slots=True)
class SourceSegment:
    """One segment of the source's media playlist, with its first presentation tick (None: unknown)."""

    sn: int
    duration_s: float
    cc: int
    program_date_time: str | None
    start_tick: int | None


@dataclass(frozen=True, slots=True)
class PlaylistUpdate:
    """What one reload of the media playlist brought."""

    new: list[SourceSegment]
    first_sn: int
    target_duration_s: int
    ended: bool


SegmentsListener = Callable[[PlaylistUpdate], Awaitable[None] | None]


def first_tick(data: bytes) -> int | None:
    """The earliest PTS among a segment's first packets, in MPEG-TS ticks (None if none is readable)."""
    earliest = None
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            for count, packet in enumerate(container.demux()):
                if packet.pts is not None and packet.time_base is not None:
                    tick = seconds_to_ticks(float(packet.pts * packet.time_base))
                    earliest = tick if earliest is None else min(earliest, tick)
                if count >= _PROBE_PACKETS:
                    break
    except (av.FFmpegError, OSError, ValueError) as exc:  # a truncated tail ends the demux: fine
        _LOGGER.debug("Segment probe stopped: %s", exc)
    return None if earliest is None else earliest % TICK_WRAP


class PlaylistFollower:
    """Reloads a media playlist every half target duration and hands over each new segment, probed."""

    def __init__(self, url: str, session: aiohttp.ClientSession, on_update: SegmentsListener) -> None:
        self.url = url
        self._session = session
        self._on_update = on_update
        self._shown = redact_url(url)
        self.master: MasterSource | None = None
        self.media_url: str | None = None
        self._last_sn: int | None = None
        self._last: SourceSegment | None = None
        self._init_data: dict[str, bytes] = {}
        self._told: set[str] = set()

    async def open(self) -> MasterSource:
        """Fetch the source's playlist: a master (its first variant is followed) or a media playlist."""
        text, base = await self._fetch_text(self.url)
        playlist = m3u8.loads(text, uri=base)
        self.media_url = playlist.playlists[0].absolute_uri if playlist.is_variant and playlist.playlists else base
        if playlist.is_variant and not playlist.playlists:
            raise FollowError(f"{self._shown}: a master playlist without variants")
        self.master = MasterSource(text, base)
        return self.master

    async def run(self) -> None:
        """Follow until cancelled (open() first, or it is done here)."""
        backoff = 1.0
        while True:
            try:
                if self.media_url is None:
                    await self.open()
                wait_s = await self._reload()
                backoff = 1.0
            except (FollowError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                self._tell_once(f"HLS playlist {self._shown} unreadable: {_reason(exc)}; retrying")
                wait_s, backoff = backoff, min(backoff * 2, 10.0)
            await asyncio.sleep(wait_s)

    async def _reload(self) -> float:
        """One reload: probe and hand over the new segments; the seconds to wait before the next."""
        assert self.media_url is not None
        text, base = await self._fetch_text(self.media_url)
        playlist = m3u8.loads(text, uri=base)
        if playlist.is_variant:
            raise FollowError(f"{self._shown}: its first variant is itself a master playlist")
        first_sn = playlist.media_sequence or 0
        cc = playlist.discontinuity_sequence or 0
        new: list[SourceSegment] = []
        for offset, segment in enumerate(playlist.segments):
            sn = first_sn + offset
            cc += 1 if segment.discontinuity else 0
            if self._last_sn is not None and sn <= self._last_sn:
                continue
            new.append(await self._probe(sn, cc, segment))
            self._last_sn = sn
        if self._last_sn is not None and first_sn > self._last_sn + 1:
            self._last_sn = None  # the playlist restarted its numbering ahead of us: take it as it is
        target = int(playlist.target_duration or 6)
        self._told.clear()
        result = self._on_update(PlaylistUpdate(new, first_sn, target, bool(playlist.is_endlist)))
        if asyncio.iscoroutine(result):
            await result
        return max(0.5, target / 2)

    async def _probe(self, sn: int, cc: int, segment: m3u8.Segment) -> SourceSegment:
        """The segment with its first presentation tick (probed, else where the previous one ended)."""
        pdt = segment.current_program_date_time
        stamp = pdt.isoformat(timespec="milliseconds").replace("+00:00", "Z") if pdt is not None else None
        tick = None
        try:
            tick = first_tick(await self._head(segment))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            _LOGGER.info("HLS segment %d of %s not probed: %s", sn, self._shown, _reason(exc))
        previous = self._last
        if tick is None and previous is not None and previous.start_tick is not None and previous.sn == sn - 1:
            tick = (previous.start_tick + seconds_to_ticks(previous.duration_s)) % TICK_WRAP
        found = SourceSegment(sn, float(segment.duration or 0.0), cc, stamp, tick)
        self._last = found
        return found

    async def _head(self, segment: m3u8.Segment) -> bytes:
        """The segment's first PROBE_BYTES (after its init section, for fragmented MP4)."""
        init = b""
        if segment.init_section is not None and segment.init_section.absolute_uri:
            uri = segment.init_section.absolute_uri
            if uri not in self._init_data:
                self._init_data = {uri: (await self._get(uri, None, _MAX_PLAYLIST_BYTES))[0]}
            init = self._init_data[uri]
        offset = 0
        if segment.byterange:
            length, _, start = segment.byterange.partition("@")
            offset = int(start) if start else 0
        return init + (await self._get(segment.absolute_uri, offset, PROBE_BYTES))[0]

    async def _get(self, url: str, offset: int | None, limit: int) -> tuple[bytes, str]:
        """Up to `limit` bytes of `url` from `offset` (a ranged request), and the address they came from."""
        headers = {"Range": f"bytes={offset}-{offset + limit - 1}"} if offset is not None else {}
        async with self._session.get(url, headers=headers, timeout=_TIMEOUT) as response:
            if response.status not in (200, 206):
                raise aiohttp.ClientResponseError(response.request_info, (), status=response.status,
                                                  message=f"HTTP {response.status}")
            data = bytearray()
            while len(data) < limit:
                chunk = await response.content.read(limit - len(data))
                if not chunk:
                    break
                data += chunk
            return bytes(data), str(response.url)

    async def _fetch_text(self, url: str) -> tuple[str, str]:
        """A playlist's text and its final address (after redirects: relative URIs resolve against it)."""
        data, final_url = await self._get(url, None, _MAX_PLAYLIST_BYTES)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise FollowError(f"{self._shown} is not a text playlist") from exc
        if not text.lstrip().startswith("#EXTM3U"):
            raise FollowError(f"{self._shown} is not an HLS playlist")
        return text, final_url

    def _tell_once(self, message: str) -> None:
        if message not in self._told:
            self._told.add(message)
            _LOGGER.warning("%s", message)


def _reason(exc: BaseException) -> str:
    """One line about the failure that never quotes an address (aiohttp's messages may hold the URL)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or type(exc.os_error).__name__
    if isinstance(exc, FollowError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
