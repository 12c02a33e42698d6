"""A real HLS livestream over loopback: AAC-in-MPEG-TS segments that air on the wall clock.

Clock model (all times are ``time.monotonic()`` seconds, which is system-wide on Linux, so a
relay subprocess's monotonic clock is comparable):

* The stream clock starts at the first ``start()``; afterwards ``stream_time_at(t)`` is
  ``(t - started_at) * speed`` seconds of stream (capped at the end of the file unless ``loop``).
* Segment ``n`` covers stream PTS ``segment_span_s(n)`` and airs (enters the playlist and becomes
  fetchable) once the stream clock passes its end, like a real live encoder.
* Stream PTS 0 is the AAC encoder's priming; file offset ``f`` plays at stream time
  ``f + priming_s`` (``file_time_at`` does this mapping, modulo the file length when looping).
* ``stop()``/``start()`` take the HTTP server away and back on the same port; the stream clock
  keeps running meanwhile, so what aired during the outage is skipped.
* ``start(reset_timestamps=True)`` comes back like a restarted encoder: PTS start again from 0
  at the segment in progress (its first segment), and the playlist holds only the segments
  aired since.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import threading
import time
from pathlib import Path
from types import TracebackType

from aiohttp import web

from tests.support.media import AAC_FRAME_SAMPLES, EncodedAudio, encode_aac, mux_ts_segment

_LOGGER = logging.getLogger(__name__)

_CALL_TIMEOUT_S = 30.0
_SHUTDOWN_TIMEOUT_S = 0.25
PLAYLIST_PATH = "/live.m3u8"


class Timeline:
    """Where each segment sits on the stream clock; looping passes repeat the file forever."""

    def __init__(self, audio: EncodedAudio, segment_s: float, loop: bool) -> None:
        """Cut the packets into segments of about segment_s, on AAC frame boundaries."""
        self.audio = audio
        self.loop = loop
        rate = audio.sample_rate_hz
        count = len(audio.packets)
        packets_per_segment = segment_s * rate / AAC_FRAME_SAMPLES
        starts = {min(count, math.ceil(k * packets_per_segment - 1e-9))
                  for k in range(math.ceil(count / packets_per_segment) + 1)}
        self._starts = tuple(sorted(starts | {count}))
        self._ends_samples = tuple(index * AAC_FRAME_SAMPLES for index in self._starts[1:])

    @property
    def segments_per_pass(self) -> int:
        """Segments in one pass through the file."""
        return len(self._starts) - 1

    @property
    def pass_s(self) -> float:
        """Stream seconds in one pass through the file."""
        return self.audio.total_samples / self.audio.sample_rate_hz

    @property
    def target_duration_s(self) -> int:
        """EXT-X-TARGETDURATION: the longest segment rounded to the nearest second (RFC 8216)."""
        longest = max(b - a for a, b in zip(self._starts, self._starts[1:]))
        return max(1, round(longest * AAC_FRAME_SAMPLES / self.audio.sample_rate_hz))

    def packet_range(self, n: int) -> tuple[int, int, int]:
        """First packet, stop packet and PTS offset in samples of segment n."""
        passes, k = divmod(n, self.segments_per_pass)
        return self._starts[k], self._starts[k + 1], passes * self.audio.total_samples

    def segment_span_s(self, n: int) -> tuple[float, float]:
        """Stream-time start and end of segment n in seconds."""
        first, stop, offset = self.packet_range(n)
        rate = self.audio.sample_rate_hz
        return ((offset + first * AAC_FRAME_SAMPLES) / rate,
                (offset + stop * AAC_FRAME_SAMPLES) / rate)

    def clamp_stream_s(self, stream_s: float) -> float:
        """Stream time capped at the end of the file unless looping."""
        return stream_s if self.loop else min(stream_s, self.pass_s)

    def aired_count(self, stream_s: float) -> int:
        """Number of segments whose end the stream clock has passed."""
        samples = math.floor(self.clamp_stream_s(stream_s) * self.audio.sample_rate_hz + 1e-6)
        passes, rest = divmod(samples, self.audio.total_samples)
        return passes * self.segments_per_pass + bisect.bisect_right(self._ends_samples, rest)


def render_playlist(timeline: Timeline, aired: int, window: int, earliest: int = 0) -> str:
    """The sliding-window media playlist after `aired` segments have aired (none before `earliest`)."""
    first = max(earliest, aired - window)
    lines = ["#EXTM3U", "#EXT-X-VERSION:3",
             f"#EXT-X-TARGETDURATION:{timeline.target_duration_s}",
             f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for n in range(first, aired):
        start_s, end_s = timeline.segment_span_s(n)
        lines += [f"#EXTINF:{end_s - start_s:.6f},", f"seg{n}.ts"]
    if not timeline.loop and aired >= timeline.segments_per_pass:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


class LiveHlsServer:
    """Serves `/live.m3u8` and `/seg{n}.ts` on 127.0.0.1 from a background event-loop thread."""

    def __init__(self, audio_path: str | Path, segment_s: float = 2.0, window: int = 6,
                 speed: float = 1.0, loop: bool = False, port: int = 0,
                 sample_rate_hz: int = 48000) -> None:
        """Configure only; encoding and binding happen in start()."""
        if segment_s <= 0 or window < 1 or speed <= 0:
            raise ValueError("segment_s and speed must be positive and window at least 1")
        self.audio_path = Path(audio_path)
        self.segment_s, self.window, self.speed = segment_s, window, speed
        self.loop_audio, self.sample_rate_hz = loop, sample_rate_hz
        self._port = port
        self._timeline: Timeline | None = None
        self._started_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.playlist_requests = 0
        self.segment_requests = 0
        self._epoch_segment = 0  # first segment of the current encoder run
        self._epoch_shift = 0  # samples its PTS are shifted back by

    @property
    def port(self) -> int:
        """The bound port (fixed after the first start())."""
        if not self._port:
            raise RuntimeError("LiveHlsServer has no port before start()")
        return self._port

    @property
    def url(self) -> str:
        """The live playlist URL."""
        return f"http://127.0.0.1:{self.port}{PLAYLIST_PATH}"

    @property
    def timeline(self) -> Timeline:
        """Segment layout on the stream clock (available after start())."""
        if self._timeline is None:
            raise RuntimeError("LiveHlsServer has no timeline before start()")
        return self._timeline

    @property
    def started_at(self) -> float:
        """time.monotonic() at which the stream clock read zero."""
        if self._started_at is None:
            raise RuntimeError("LiveHlsServer was never started")
        return self._started_at

    @property
    def running(self) -> bool:
        """True while the HTTP server accepts connections."""
        return self._runner is not None

    @property
    def priming_s(self) -> float:
        """Stream time of file offset 0 (the AAC encoder's priming delay)."""
        return self.timeline.audio.priming_samples / self.sample_rate_hz

    def stream_time_at(self, when: float | None = None) -> float:
        """Stream seconds aired by monotonic time `when` (default now), capped at the end."""
        now = time.monotonic() if when is None else when
        return self.timeline.clamp_stream_s(max(0.0, (now - self.started_at) * self.speed))

    def file_time_at(self, when: float | None = None) -> float:
        """Offset into the audio file (seconds) playing at monotonic time `when`."""
        stream_s = self.stream_time_at(when)
        if self.loop_audio:
            stream_s %= self.timeline.pass_s
        return max(0.0, stream_s - self.priming_s)

    def aired_segments(self, when: float | None = None) -> int:
        """Number of segments aired by monotonic time `when` (default now)."""
        return self.timeline.aired_count(self.stream_time_at(when))

    def wall_time_of(self, stream_s: float) -> float:
        """Monotonic time at which the stream clock reaches stream_s."""
        return self.started_at + stream_s / self.speed

    @property
    def ends_at(self) -> float | None:
        """Monotonic time at which the last segment airs and ENDLIST appears (None if looping)."""
        return None if self.loop_audio else self.wall_time_of(self.timeline.pass_s)

    @property
    def epoch_segment(self) -> int:
        """First segment of the current encoder run (0 unless restarted with fresh timestamps)."""
        return self._epoch_segment

    def start(self, reset_timestamps: bool = False) -> LiveHlsServer:
        """Encode (once), start the stream clock (first time only) and listen on the port.

        With reset_timestamps, come back like a restarted encoder (see the module docstring).
        """
        if self.running:
            return self
        if self._timeline is None:
            audio = encode_aac(str(self.audio_path), self.sample_rate_hz)
            self._timeline = Timeline(audio, self.segment_s, self.loop_audio)
        if self._started_at is None:
            self._started_at = time.monotonic()
        elif reset_timestamps:
            self._epoch_segment = self.aired_segments()
            first, _stop, offset = self.timeline.packet_range(self._epoch_segment)
            self._epoch_shift = offset + first * AAC_FRAME_SAMPLES
        loop = self._ensure_loop()
        asyncio.run_coroutine_threadsafe(self._listen(), loop).result(_CALL_TIMEOUT_S)
        _LOGGER.info("Live HLS serving %s at %s", self.audio_path.name, self.url)
        return self

    def stop(self) -> None:
        """Close the listening socket and every open connection; the stream clock keeps running."""
        runner, self._runner = self._runner, None
        if runner is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(_CALL_TIMEOUT_S)
            _LOGGER.info("Live HLS stopped on port %d", self._port)

    def close(self) -> None:
        """Stop serving and end the event-loop thread; safe to call twice."""
        self.stop()
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_CALL_TIMEOUT_S)
            loop.close()

    def __enter__(self) -> LiveHlsServer:
        """Start serving."""
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close the server."""
        self.close()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The background event loop, started on first use."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever,
                                            name="live-hls", daemon=True)
            self._thread.start()
        return self._loop

    async def _listen(self) -> None:
        """Bind the aiohttp app to 127.0.0.1 on the remembered port."""
        app = web.Application()
        self._add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._port = int(runner.addresses[0][1])
        self._runner = runner

    def _add_routes(self, app: web.Application) -> None:
        """The playlist and its segments."""
        app.router.add_get(PLAYLIST_PATH, self._handle_playlist)
        app.router.add_get(r"/seg{n:\d+}.ts", self._handle_segment)

    async def _handle_playlist(self, request: web.Request) -> web.Response:
        """Serve the playlist; before the first segment airs, wait for it like a long poll."""
        self.playlist_requests += 1
        timeline = self.timeline
        first_airs_at = self.wall_time_of(timeline.segment_span_s(self._epoch_segment)[1])
        if (delay := first_airs_at - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        text = render_playlist(timeline, self.aired_segments(), self.window, self._epoch_segment)
        return web.Response(text=text, content_type="application/vnd.apple.mpegurl",
                            headers={"Cache-Control": "no-cache"})

    async def _handle_segment(self, request: web.Request) -> web.Response:
        """Serve an aired segment, muxed with PTS continuing across segments and passes."""
        self.segment_requests += 1
        n = int(request.match_info["n"])
        if not self._epoch_segment <= n < self.aired_segments():
            raise web.HTTPNotFound()
        first, stop, offset = self.timeline.packet_range(n)
        body = await asyncio.to_thread(
            mux_ts_segment, self.timeline.audio, first, stop, offset - self._epoch_shift
        )
        return web.Response(body=body, content_type="video/mp2t")
