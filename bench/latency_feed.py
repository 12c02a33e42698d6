"""Feeding a relay at real time from the bench's own clock, and knowing when each sample was spoken.

Three ways in, as live audio reaches a real relay:

- `StdinFeed`: `relay serve -` with a WAV stream written to its stdin in 20 ms chunks on the
  bench's schedule; a sample was "spoken" when the chunk holding it was written (CLOCK_REALTIME,
  the clock of the viewer's kernel timestamps). Room tone is written until the relay is ready, and
  for `settle_s` more, so the meeting starts once models are loaded and nothing is queued.
  Given booths as well (`relay serve - --booths auto`), stdin carries live Matroska instead: the
  floor and one language-tagged PCM track per booth, 20 ms of each per cluster, as a venue's
  contribution feed (SRT, RTMP) carries them. Matroska closes a cluster when the next block comes,
  so each chunk leaves the bench one chunk (20 ms) after its samples were due.
- `HlsFeed`: a live HLS server on 127.0.0.1 (tests.support.live_hls) airing the lead + meeting;
  a sample was spoken when the encoder's clock reached it (its segment airs up to a segment later:
  that latency is the viewer's too, and is part of the figure).

Each feed gives `spoken_at(meeting_s)` (Unix time) and `meeting_s(stream_s)`: the relay's stream
time back on the meeting's clock.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.meetings import write_flac

RATE = 16_000
CHUNK_S = 0.02
_ROOM_RMS = 0.0006


def wav_header() -> bytes:
    """A streaming WAV header (16 kHz mono s16, sizes unknown: read until the end)."""
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
            + b"data" + struct.pack("<I", 0xFFFFFFFF))


def pcm(samples: np.ndarray) -> bytes:
    return np.clip(samples * 32767, -32768, 32767).astype("<i2").tobytes()


class _WavPipe:
    """One mono track as a streaming WAV."""

    def __init__(self, stdin) -> None:
        self._stdin = stdin
        stdin.write(wav_header())

    def write(self, chunks: list[np.ndarray]) -> None:
        self._stdin.write(pcm(chunks[0]))
        self._stdin.flush()

    def close(self) -> None:
        self._stdin.close()


class _MatroskaPipe:
    """Language-tagged PCM tracks (the floor first) as live Matroska, written straight to the pipe's fd."""

    def __init__(self, stdin, languages: list[str]) -> None:
        import av

        self._stdin = stdin
        self._out = av.open(f"pipe:{stdin.fileno()}", "w", format="matroska",
                            options={"live": "1", "cluster_time_limit": "0", "flush_packets": "1"})
        self._streams = []
        for language in languages:
            stream = self._out.add_stream("pcm_s16le", rate=RATE, layout="mono")
            stream.metadata["language"] = language
            self._streams.append(stream)
        self._pts = 0

    def write(self, chunks: list[np.ndarray]) -> None:
        import av

        for stream, samples in zip(self._streams, chunks, strict=True):
            frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm(samples), "<i2")[None, :], format="s16", layout="mono")
            frame.sample_rate, frame.pts = RATE, self._pts
            for packet in stream.encode(frame):
                self._out.mux(packet)
        self._pts += len(chunks[0])

    def close(self) -> None:
        try:
            self._out.close()
        finally:
            self._stdin.close()


class StdinFeed:
    """Writes room tone, then (once `ready` is set and `settle_s` more passed) the meeting, at real time.

    With `booths` ({channel: (language tag, audio)}, e.g. "booth-fr": ("fra", ...)), the meeting is
    the floor's track and each booth's audio goes beside it, padded with room tone to the floor's length.
    """

    def __init__(self, proc: subprocess.Popen, meeting: np.ndarray, ready: threading.Event, settle_s: float = 3.0,
                 tail_s: float = 3.0, booths: dict[str, tuple[str, np.ndarray]] | None = None) -> None:
        self._proc = proc
        self._meeting = meeting
        self._booths = booths or {}
        self.audio = {"floor": meeting, **{channel: audio for channel, (_, audio) in self._booths.items()}}
        self._ready = ready
        self._settle_s = settle_s
        self._tail_s = tail_s
        self._noise = np.random.default_rng(7)
        self.lead_samples = 0  # room tone before the meeting's first sample
        self._written_at: list[float] = []  # Unix time each meeting chunk was written
        self.behind_s = 0.0  # the most a meeting chunk's write fell behind the schedule (the pipe was full)
        self.behind_in_lead_s = 0.0  # the same for the room tone before it (the relay loading its models)
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feed", daemon=True)

    def start(self) -> StdinFeed:
        self._thread.start()
        return self

    def _run(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        step = int(CHUNK_S * RATE)
        tracks = [self._meeting, *(audio for _, audio in self._booths.values())]
        pipe: _WavPipe | _MatroskaPipe | None = None
        try:
            pipe = _MatroskaPipe(stdin, ["mul", *(tag for tag, _ in self._booths.values())]) if self._booths \
                else _WavPipe(stdin)
            started = time.monotonic()
            chunk = 0
            ready_at = None
            while ready_at is None or time.monotonic() < ready_at + self._settle_s:
                lag = self._paced_write(pipe, [self._room(step) for _ in tracks], started, chunk)
                self.behind_in_lead_s = max(self.behind_in_lead_s, lag)
                chunk += 1
                self.lead_samples += step
                if ready_at is None and self._ready.is_set():
                    ready_at = time.monotonic()
            for offset in range(0, len(self._meeting), step):
                lag = self._paced_write(pipe, [self._slice(audio, offset, step) for audio in tracks], started, chunk)
                self.behind_s = max(self.behind_s, lag)
                self._written_at.append(time.time())
                chunk += 1
            for _ in range(int(self._tail_s / CHUNK_S)):
                self._paced_write(pipe, [self._room(step) for _ in tracks], started, chunk)
                chunk += 1
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                if pipe is not None:
                    pipe.close()
                else:
                    stdin.close()
            except OSError:
                pass
            finally:  # whatever else went wrong (it is raised on): the bench must not wait for the feed
                self.done.set()

    def _room(self, samples: int) -> np.ndarray:
        return (self._noise.standard_normal(samples) * _ROOM_RMS).astype(np.float32)

    def _slice(self, audio: np.ndarray, offset: int, step: int) -> np.ndarray:
        """`step` samples of a track from `offset`; room tone past its end (a booth shorter than the floor)."""
        part = audio[offset : offset + step]
        return part if len(part) == step else np.concatenate([part, self._room(step - len(part))])

    def _paced_write(self, pipe: _WavPipe | _MatroskaPipe, chunks: list[np.ndarray], started: float, chunk: int) -> float:
        """Write one chunk when it is due; how far behind its schedule the write ended."""
        due = started + chunk * CHUNK_S
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pipe.write(chunks)
        return time.monotonic() - due - CHUNK_S

    def spoken_at(self, meeting_s: float) -> float:
        """Unix time the meeting's second `meeting_s` went into the pipe."""
        index = min(max(0, int(meeting_s / CHUNK_S)), len(self._written_at) - 1)
        return self._written_at[index] - CHUNK_S + (meeting_s - index * CHUNK_S)

    def meeting_s(self, stream_s: float) -> float:
        return stream_s - self.lead_samples / RATE


class _LiveServerFeed:
    """A live HLS server on 127.0.0.1 airing the lead + meeting; subclasses build `server` in `_dir`."""

    server: Any
    lead_s: float

    def __init__(self, prefix: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix=prefix)
        self._offset_realtime = 0.0
        self.stream_offset_s = 0.0  # server stream second at the relay's stream time 0

    def start(self):
        self.server.start()
        self._offset_realtime = time.time() - time.monotonic()
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def spoken_at(self, meeting_s: float) -> float:
        return self.server.wall_time_of(meeting_s + self.lead_s + self.server.priming_s) + self._offset_realtime

    def meeting_s(self, stream_s: float) -> float:
        return stream_s + self.stream_offset_s - self.server.priming_s - self.lead_s

    def close(self) -> None:
        self.server.close()
        self._dir.cleanup()


class HlsFeed(_LiveServerFeed):
    """The lead and the meeting as a live HLS stream; the relay is pointed at `url`."""

    def __init__(self, meeting: np.ndarray, lead_s: float = 12.0, segment_s: float = 2.0) -> None:
        from tests.support.live_hls import LiveHlsServer

        super().__init__("bench-latency-")
        noise = np.random.default_rng(7).standard_normal(int(lead_s * RATE)) * _ROOM_RMS
        self.lead_s = lead_s
        path = Path(self._dir.name) / "fed.flac"
        write_flac(np.concatenate([noise.astype(np.float32), meeting]), path)
        self.server = LiveHlsServer(path, segment_s=segment_s, window=10)


class BoothsFeed(_LiveServerFeed):
    """The interpreted event as a live HLS master (floor + three booth renditions), each channel led by room tone."""

    CHANNELS = ("floor", "booth-en", "booth-fr", "booth-es")

    def __init__(self, seconds: float, lead_s: float = 12.0, segment_s: float = 2.0) -> None:
        from bench.meetings import SPEECH_DIR, load
        from tests.support.live_hls_master import LiveHlsMasterServer, Rendition

        super().__init__("bench-booths-")
        self.lead_s = lead_s
        self.audio: dict[str, np.ndarray] = {}
        renditions = []
        noise = np.random.default_rng(7)
        for channel, title, language in zip(self.CHANNELS, ("Floor", "English", "Français", "Español"),
                                            ("mul", "en", "fr", "es")):
            audio = load(SPEECH_DIR / "interpretation" / f"{channel}.flac")[: int(seconds * RATE)]
            self.audio[channel] = audio
            path = Path(self._dir.name) / f"{channel}.flac"
            write_flac(np.concatenate([(noise.standard_normal(int(lead_s * RATE)) * _ROOM_RMS).astype(np.float32), audio]), path)
            renditions.append(Rendition(channel.removeprefix("booth-"), title, language, path))
        self.server = LiveHlsMasterServer(tuple(renditions), seconds=None, segment_s=segment_s, window=10)
