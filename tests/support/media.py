"""PyAV media helpers for tests: AAC encoding, MPEG-TS muxing, a video-only file, a free port."""

from __future__ import annotations

import functools
import io
import logging
import socket
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

_LOGGER = logging.getLogger(__name__)

SPEECH_DIR = Path(__file__).resolve().parents[3] / "shared" / "speech"
MEETING_FLAC = SPEECH_DIR / "meeting.flac"
AAC_FRAME_SAMPLES = 1024


@dataclass(frozen=True, slots=True)
class EncodedAudio:
    """A whole file encoded once as AAC packets, packet i starting at sample i * 1024."""

    sample_rate_hz: int
    extradata: bytes
    packets: tuple[bytes, ...]
    priming_samples: int

    @property
    def total_samples(self) -> int:
        """Samples covered by all packets (encoder priming and tail padding included)."""
        return len(self.packets) * AAC_FRAME_SAMPLES


@functools.lru_cache(maxsize=4)
def encode_aac(
    audio_path: str, sample_rate_hz: int = 48000, bit_rate: int = 64000
) -> EncodedAudio:
    """Decode the first audio stream of a file and encode it to mono AAC-LC (cached)."""
    encoder = av.CodecContext.create("aac", "w")
    encoder.sample_rate = sample_rate_hz
    encoder.layout = "mono"
    encoder.format = "fltp"
    encoder.bit_rate = bit_rate
    encoder.time_base = Fraction(1, sample_rate_hz)
    encoder.open()
    resampler = av.AudioResampler(
        format="fltp", layout="mono", rate=sample_rate_hz, frame_size=AAC_FRAME_SAMPLES
    )
    packets: list[av.Packet] = []
    with av.open(audio_path) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            for resampled in resampler.resample(frame):
                packets.extend(encoder.encode(resampled))
    for resampled in resampler.resample(None):
        packets.extend(encoder.encode(resampled))
    packets.extend(encoder.encode(None))
    first_pts = packets[0].pts or 0
    for index, packet in enumerate(packets):
        if packet.pts != first_pts + index * AAC_FRAME_SAMPLES:
            raise RuntimeError(f"AAC packet {index} has pts {packet.pts}: not contiguous")
    _LOGGER.debug("Encoded %s to %d AAC packets at %d Hz", audio_path, len(packets), sample_rate_hz)
    return EncodedAudio(
        sample_rate_hz=sample_rate_hz,
        extradata=bytes(encoder.extradata or b""),
        packets=tuple(bytes(packet) for packet in packets),
        priming_samples=-first_pts,
    )


def mux_ts_segment(audio: EncodedAudio, first: int, stop: int, pts_offset: int) -> bytes:
    """Mux packets [first, stop) into one MPEG-TS segment, PTS shifted by pts_offset samples."""
    time_base = Fraction(1, audio.sample_rate_hz)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as container:
        stream = container.add_stream("aac", rate=audio.sample_rate_hz, layout="mono")
        stream.codec_context.extradata = audio.extradata
        stream.time_base = time_base
        for index in range(first, stop):
            packet = av.Packet(audio.packets[index])
            packet.pts = packet.dts = pts_offset + index * AAC_FRAME_SAMPLES
            packet.duration = AAC_FRAME_SAMPLES
            packet.time_base = time_base
            packet.stream = stream
            container.mux(packet)
    return buffer.getvalue()


def cut_audio(audio_path: Path, start_s: float, end_s: float, out_dir: Path) -> Path:
    """Seconds [start_s, end_s) of a file as FLAC in out_dir (kept: later calls reuse it)."""
    out = out_dir / f"{audio_path.stem}-{start_s:g}-{end_s:g}s.flac"
    if out.exists():
        return out
    with av.open(str(audio_path)) as source, av.open(str(out), "w") as target:
        stream_in = source.streams.audio[0]
        stream_out = target.add_stream("flac", rate=stream_in.rate, layout="mono")
        first, limit = round(start_s * stream_in.rate), round(end_s * stream_in.rate)
        position = 0
        for frame in source.decode(stream_in):
            samples = frame.to_ndarray()
            keep = samples[:, max(0, first - position):max(0, limit - position)]
            position += frame.samples
            if keep.shape[1]:
                piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(keep), format=frame.format.name, layout="mono")
                piece.sample_rate = stream_in.rate
                target.mux(stream_out.encode(piece))
            if position >= limit:
                break
        target.mux(stream_out.encode(None))
    return out


def write_video_only(path: Path, seconds: float = 2.0, fps: int = 10) -> Path:
    """Write a small MPEG-4 video with no audio stream to path (container picked by suffix)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for index in range(round(seconds * fps)):
            image = np.full((120, 160, 3), (index * 12) % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on host a moment ago (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
