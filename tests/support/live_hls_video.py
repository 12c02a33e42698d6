"""A live HLS stream with video, as an event's webcast serves it: master, variant, H.264 + AAC in MPEG-TS.

``/master.m3u8`` names one variant, ``/video/live.m3u8``, a sliding live media playlist whose
segments ``/video/seg{n}.ts`` mux a small H.264 picture (each segment starts on a key frame)
with the AAC audio of `LiveHlsServer`, on its stream clock (see that module's docstring). Every
presentation timestamp is shifted by `pts_offset_ticks` (modulo 2**33, as MPEG-TS writes it), so a
test can start the stream just before the 33-bit wrap. Answers carry CORS headers: a test page on
another origin plays it with hls.js, as a player on an event's site would.
"""

from __future__ import annotations

import asyncio
import functools
import io
import time
from fractions import Fraction

import av
import numpy as np
from aiohttp import web

from tests.support.live_hls import LiveHlsServer, render_playlist
from tests.support.media import AAC_FRAME_SAMPLES, EncodedAudio

MASTER_PATH = "/master.m3u8"
MEDIA_PATH = "/video/live.m3u8"
TICK_HZ = 90_000
_WIDTH, _HEIGHT = 160, 90
_CORS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"}


@functools.lru_cache(maxsize=256)
def encode_video(start_s: float, end_s: float, fps: int) -> tuple[tuple[int, bytes, bool], ...]:
    """H.264 frames shown from `start_s` to `end_s` (stream seconds), a closed GOP: (tick, bytes, key)."""
    first, stop = int(np.ceil(start_s * fps - 1e-9)), int(np.ceil(end_s * fps - 1e-9))
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = _WIDTH, _HEIGHT, "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps, 1)
    codec.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                     "g": str(max(1, stop - first)), "bf": "0"}
    packets = []
    for index in range(first, stop):
        shade = (index * 7) % 200 + 28
        image = np.full((_HEIGHT, _WIDTH, 3), (shade, 255 - shade, 128), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index - first
        packets += codec.encode(frame)
    packets += codec.encode(None)
    return tuple((round((first + p.pts) * TICK_HZ / fps), bytes(p), bool(p.is_keyframe)) for p in packets)


def mux_av_segment(audio: EncodedAudio, first: int, stop: int, sample_offset: int, tick_offset: int,
                   video: tuple[tuple[int, bytes, bool], ...]) -> bytes:
    """One MPEG-TS segment: AAC packets [first, stop) and the video frames, every PTS + tick_offset."""
    buffer = io.BytesIO()
    base = Fraction(1, TICK_HZ)
    with av.open(buffer, "w", format="mpegts") as container:
        vstream = container.add_stream("h264", rate=25)
        vstream.width, vstream.height = _WIDTH, _HEIGHT
        astream = container.add_stream("aac", rate=audio.sample_rate_hz, layout="mono")
        astream.codec_context.extradata = audio.extradata
        vstream.time_base = astream.time_base = base
        ticks_per_packet = AAC_FRAME_SAMPLES * TICK_HZ // audio.sample_rate_hz
        items = [((sample_offset + i * AAC_FRAME_SAMPLES) * TICK_HZ // audio.sample_rate_hz, astream,
                  audio.packets[i], True, ticks_per_packet) for i in range(first, stop)]
        items += [(tick, vstream, data, key, 0) for tick, data, key in video]
        for tick, stream, data, key, duration in sorted(items, key=lambda item: item[0]):
            packet = av.Packet(data)
            packet.pts = packet.dts = tick + tick_offset  # MPEG-TS keeps the low 33 bits: it wraps
            packet.time_base, packet.stream = base, stream
            packet.is_keyframe = key
            if duration:
                packet.duration = duration
            container.mux(packet)
    return buffer.getvalue()


class LiveHlsVideoServer(LiveHlsServer):
    """Serves the master, the variant's live media playlist and its audio+video segments."""

    def __init__(self, *args, pts_offset_ticks: int = 0, fps: int = 10, **options) -> None:
        super().__init__(*args, **options)
        self.pts_offset_ticks = pts_offset_ticks
        self.fps = fps

    @property
    def url(self) -> str:
        """The master playlist URL."""
        return f"http://127.0.0.1:{self.port}{MASTER_PATH}"

    @property
    def media_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{MEDIA_PATH}"

    def tick_of(self, stream_s: float) -> int:
        """The presentation tick (modulo 2**33) of stream time `stream_s`."""
        return (round(stream_s * TICK_HZ) + self.pts_offset_ticks) % 2**33

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get(MASTER_PATH, self._handle_master)
        app.router.add_get(MEDIA_PATH, self._handle_media)
        app.router.add_get(r"/video/seg{n:\d+}.ts", self._handle_av_segment)

    async def _handle_master(self, request: web.Request) -> web.Response:
        text = ("#EXTM3U\n#EXT-X-VERSION:3\n"
                f'#EXT-X-STREAM-INF:BANDWIDTH=200000,CODECS="avc1.42c00c,mp4a.40.2",RESOLUTION={_WIDTH}x{_HEIGHT}\n'
                "video/live.m3u8\n")
        return web.Response(text=text, content_type="application/vnd.apple.mpegurl", headers=_CORS)

    async def _handle_media(self, request: web.Request) -> web.Response:
        self.playlist_requests += 1
        timeline = self.timeline
        if (delay := self.wall_time_of(timeline.segment_span_s(0)[1]) - time.monotonic()) > 0:
            await asyncio.sleep(delay)  # like an encoder's first playlist: once its first segment aired
        text = render_playlist(timeline, self.aired_segments(), self.window)
        return web.Response(text=text, content_type="application/vnd.apple.mpegurl", headers=_CORS)

    async def _handle_av_segment(self, request: web.Request) -> web.Response:
        self.segment_requests += 1
        n = int(request.match_info["n"])
        if not 0 <= n < self.aired_segments():
            raise web.HTTPNotFound(headers=_CORS)
        first, stop, offset = self.timeline.packet_range(n)
        start_s, end_s = self.timeline.segment_span_s(n)
        video = await asyncio.to_thread(encode_video, start_s, end_s, self.fps)
        body = await asyncio.to_thread(mux_av_segment, self.timeline.audio, first, stop, offset,
                                       self.pts_offset_ticks, video)
        return web.Response(body=body, content_type="video/mp2t", headers=_CORS)
