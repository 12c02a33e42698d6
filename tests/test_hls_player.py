"""A stock player shows the relay's French captions in sync with the video, through `/hls/master.m3u8`.

One real run for the module: a live HLS webcast with video (H.264 + AAC over 127.0.0.1, 40 s of the
meeting, its 33-bit presentation clock wrapping mid-way), `relay serve` on it (real Whisper,
Apertium), and hls.js from npm in Debian's headless Chromium on a page of another origin, playing
the relay's master 14 s behind live with the French subtitle track chosen. Then the playlists and
segments it played are checked strictly, and FFmpeg (PyAV) reads the master's subtitle rendition.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import m3u8
import pytest
import webvtt

from tests.browser import chromium_path
from tests.support.hls_player import play
from tests.support.hls_player import stream_time as player_stream_time
from tests.support.live_hls_video import TICK_HZ, LiveHlsVideoServer
from tests.support.media import MEETING_FLAC, SPEECH_DIR, cut_audio

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed")

RELAY = str(Path(sys.executable).with_name("relay"))
# An English sentence, five French ones, then the room's silence until the stream ends: the last
# French words are captioned while the webcast is live. (How the last segments reach a player
# when a source ends right after its last words: test_hls_service.py.)
CLIP_S = (36.0, 76.0)
WRAP_AT_S = 20.0  # stream second at which the presentation clock passes 2**33 and starts again at 0
PLAYER_BEHIND_S = 14
TOLERANCE_S = 0.5


@dataclass(frozen=True, slots=True)
class Run:
    server: LiveHlsVideoServer
    relay: str
    record: dict


def french_sentences() -> list[dict]:
    """The French sentences wholly inside the clip, their times moved onto the clip's stream clock."""
    events = json.loads((SPEECH_DIR / "meeting.json").read_text())["events"]
    first, last = CLIP_S
    return [
        {**e, "start": e["start"] - first, "end": e["end"] - first}
        for e in events if e["kind"] == "speech" and e["lang"] == "fr" and first <= e["start"] and e["end"] <= last
    ]


@contextlib.contextmanager
def relay_on(source: str, data: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    proc = subprocess.Popen([RELAY, "serve", source, "--port", "0", "--data", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert "viewers open" in line, line
        yield line.split("viewers open ", 1)[1].strip().rstrip("/"), proc
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Iterator[Run]:
    clip = cut_audio(MEETING_FLAC, *CLIP_S, tmp_path_factory.mktemp("clip"))
    server = LiveHlsVideoServer(clip, segment_s=2.0, window=10, pts_offset_ticks=2**33 - round(WRAP_AT_S * TICK_HZ))
    server.start()
    try:
        with relay_on(server.url, tmp_path_factory.mktemp("relay")) as (relay, _proc):
            # A viewer joins a webcast already running: the player then sits PLAYER_BEHIND_S behind live.
            time.sleep(max(0.0, PLAYER_BEHIND_S + 4.0 - server.stream_time_at()))
            record = asyncio.run(play(f"{relay}/hls/master.m3u8", "fr", PLAYER_BEHIND_S, CLIP_S[1] - CLIP_S[0] + 60))
            yield Run(server, relay, record)
    finally:
        server.close()


def stream_time(run: Run, media_s: float) -> float | None:
    """A media time of the player back on the stream's clock (None outside what it buffered)."""
    return player_stream_time(run.record, lambda sn: run.server.timeline.segment_span_s(sn)[0], media_s)


def played_from(run: Run) -> float:
    """The stream time of the first video fragment the player buffered."""
    return min(run.server.timeline.segment_span_s(int(sn))[0] for sn in run.record["fragments"])


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def test_the_player_offers_every_caption_language_and_plays_without_errors(run: Run) -> None:
    assert run.record["errors"] == []
    assert run.record["ended"], "the video did not play to its end"
    offered = {(t["lang"], t["name"]) for t in run.record["tracks"]}
    assert {("en", "English"), ("fr", "Français"), ("es", "Español"), ("mul", "Original (as spoken)")} <= offered
    assert run.record["chosen"] is not None


def test_french_cues_show_at_the_video_times_the_words_were_spoken(run: Run) -> None:
    cues = list(run.record["cues"].values())
    shown = run.record["shown"]
    priming_s = run.server.priming_s  # stream time 0 is the AAC encoder's priming, before the file's first sample
    played = [s for s in french_sentences() if s["start"] + priming_s >= played_from(run)]
    assert len(played) >= 4, (played_from(run), run.record["fragments"])
    for sentence in played:
        spoken_s = sentence["start"] + priming_s
        at = {id(c): stream_time(run, c["start"]) for c in cues}
        matches = [c for c in cues if at[id(c)] is not None and abs(at[id(c)] - spoken_s) <= TOLERANCE_S]
        assert matches, f"no cue within {TOLERANCE_S} s of {sentence['text']!r} at {spoken_s:.2f} s: {cues}"
        cue = matches[0]
        common = words(cue["text"]) & words(sentence["text"])
        assert len(common) >= len(words(sentence["text"])) / 3, (cue["text"], sentence["text"])
        key = next(k for k, c in run.record["cues"].items() if c == cue)
        assert key in shown, f"{cue['text']!r} was never on screen"
        assert cue["start"] - 0.3 <= shown[key] <= cue["end"], (cue, shown[key])


def test_the_english_sentence_reaches_french_viewers_as_labelled_machine_translation(run: Run) -> None:
    texts = [c["text"] for c in run.record["cues"].values()]
    assert any(t.startswith("(machine translation)") for t in texts), texts


def get(url: str) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(), dict(response.headers)


def test_playlists_and_segments_are_valid_and_map_cues_onto_the_video_clock(run: Run) -> None:
    text, headers = get(f"{run.relay}/hls/fr.m3u8")
    playlist = m3u8.loads(text.decode(), uri=f"{run.relay}/hls/fr.m3u8")
    assert playlist.is_endlist and not playlist.is_variant
    assert headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
    assert headers["Access-Control-Allow-Origin"] == "*"
    source = m3u8.loads(get(run.server.media_url)[0].decode())
    ours = {playlist.media_sequence + i: s.duration for i, s in enumerate(playlist.segments)}
    theirs = {source.media_sequence + i: s.duration for i, s in enumerate(source.segments)}
    assert ours and set(ours) <= set(theirs)
    assert all(abs(ours[sn] - theirs[sn]) < 1e-3 for sn in ours)  # the video's own segmentation
    for sn, segment in zip(ours, playlist.segments):
        body, headers = get(segment.absolute_uri)
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        head = body.decode().splitlines()
        assert head[0] == "WEBVTT"
        mpegts, local = re.fullmatch(r"X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:([0-9:.]+)", head[1]).groups()
        parsed = webvtt.from_buffer(io.StringIO(body.decode()))
        for caption in parsed:
            assert caption.start_in_seconds < caption.end_in_seconds
        # LOCAL is the segment's start on the relay's clock, and MPEGTS the tick the video carries
        # there: the source segment's first PTS, to a few ms, across the wrap.
        assert 0 <= int(mpegts) < 2**33 and local
        expected = run.server.tick_of(run.server.timeline.segment_span_s(sn)[0])
        assert abs((int(mpegts) - expected + 2**32) % 2**33 - 2**32) <= 0.02 * TICK_HZ, (sn, mpegts, expected)


def test_ffmpeg_reads_the_subtitle_rendition_of_the_master(run: Run) -> None:
    with av.open(f"{run.relay}/hls/master.m3u8", timeout=10) as container:
        kinds = [(stream.type, stream.codec_context.name) for stream in container.streams]
        languages = {stream.metadata.get("language") for stream in container.streams if stream.type == "subtitle"}
    assert ("video", "h264") in kinds and ("audio", "aac") in kinds
    assert ("subtitle", "webvtt") in kinds
    assert {"fr", "en", "es"} <= languages

