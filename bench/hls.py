"""HLS subtitle renditions as a player lives them: where each cue lands in the video, and how early it is there.

A live webcast of the whole meeting over 127.0.0.1 (master + variant, H.264 + AAC in MPEG-TS, its
presentation clock wrapping half-way), `relay serve` on it, and three outside observers:

- hls.js 1.7.4 in Debian's headless Chromium, `--behind` s behind live, the French track chosen:
  every cue as the player placed it on its media timeline, when it was first on screen, and
  where each video fragment sits (to turn media times back into the stream's own clock);
- a poller of the source's video playlist and of the relay's French playlist (every 0.1 s, from
  this process's clock): when each video segment aired and when its subtitle segment was listed;
- the reference: meeting.json's sentence times, on the stream clock (plus the AAC priming).

Figures: (1) placement: the cue's start in the video minus where its sentence starts, for the
sentences spoken in French (their cue is the speaker's own words) and for the others (machine
translation of the same final, same times); (2) the subtitle playlist's lag behind the video's
(segment listed minus segment aired); (3) each cue's lead: how long after its words aired it
was listed, i.e. the player delay from which it is on screen at its time; (4) the player's own
view at `--behind` s: cues on screen within 0.3 s of their start.

Usage: python -m bench.hls [--segment-s 2] [--behind 20] [--out bench/results/hls.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import m3u8
import numpy as np

from bench.relay_run import RELAY, run_conditions, serving_url, write_result
from tests.support.hls_player import play, stream_time
from tests.support.live_hls_video import TICK_HZ, LiveHlsVideoServer
from tests.support.media import MEETING_FLAC, SPEECH_DIR

_CUE_ID = re.compile(r"^(\d+)$", re.MULTILINE)


class PlaylistWatcher:
    """Polls a media playlist; when each sequence number was first listed (time.monotonic()), and its body."""

    def __init__(self, url: str, fetch_bodies: bool) -> None:
        self.url = url
        self.first_seen: dict[int, float] = {}
        self.bodies: dict[int, str] = {}
        self._fetch_bodies = fetch_bodies
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> PlaylistWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                text = urllib.request.urlopen(self.url, timeout=5).read().decode()
            except OSError:
                continue
            now = time.monotonic()
            playlist = m3u8.loads(text, uri=self.url)
            for offset, segment in enumerate(playlist.segments):
                sn = (playlist.media_sequence or 0) + offset
                if sn in self.first_seen:
                    continue
                self.first_seen[sn] = now
                if self._fetch_bodies:
                    self.bodies[sn] = urllib.request.urlopen(segment.absolute_uri, timeout=5).read().decode()


def stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    array = np.asarray(values)
    return {"n": len(values), "p50": round(float(np.percentile(array, 50)), 3),
            "p95": round(float(np.percentile(array, 95)), 3), "max": round(float(array.max()), 3),
            "min": round(float(array.min()), 3)}


def sentences() -> list[dict[str, Any]]:
    events = json.loads((SPEECH_DIR / "meeting.json").read_text())["events"]
    return [e for e in events if e["kind"] == "speech"]


def measure(segment_s: float, behind_s: float, wrap_at_s: float) -> dict[str, Any]:
    server = LiveHlsVideoServer(MEETING_FLAC, segment_s=segment_s, window=round(60 / segment_s),
                                pts_offset_ticks=2**33 - round(wrap_at_s * TICK_HZ))
    server.start()
    with tempfile.TemporaryDirectory(prefix="bench-hls-") as data:
        proc = subprocess.Popen([str(RELAY), "serve", server.url, "--port", "0", "--data", data],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            relay = serving_url(proc)
            video = PlaylistWatcher(server.media_url, False).start()
            french = PlaylistWatcher(f"{relay}/hls/fr.m3u8", True).start()
            time.sleep(max(0.0, behind_s + 4 - server.stream_time_at()))  # a viewer joins a running webcast
            seconds = server.timeline.pass_s
            record = asyncio.run(play(f"{relay}/hls/master.m3u8", "fr", behind_s, seconds + 90))
            time.sleep(2)
            video.stop()
            french.stop()
        finally:
            proc.terminate()
            proc.wait(30)
            server.close()
    return score(server, record, video, french, behind_s)


def score(server: LiveHlsVideoServer, record: dict[str, Any], video: PlaylistWatcher, french: PlaylistWatcher,
          behind_s: float) -> dict[str, Any]:
    priming_s = server.priming_s
    start_of = lambda sn: server.timeline.segment_span_s(sn)[0]  # noqa: E731
    cues = {key: {**cue, "stream_s": stream_time(record, start_of, cue["start"])} for key, cue in record["cues"].items()}
    placed = [c for c in cues.values() if c["stream_s"] is not None]
    own, translated, unmatched = [], [], []
    for sentence in sentences():
        spoken_s = sentence["start"] + priming_s
        if not placed or spoken_s < min(c["stream_s"] for c in placed) - 1.0:
            continue  # before the player joined
        nearest = min(placed, key=lambda c: abs(c["stream_s"] - spoken_s))
        error = nearest["stream_s"] - spoken_s
        if abs(error) > 2.0:
            unmatched.append(sentence["text"][:40])
            continue
        (own if sentence["lang"] == "fr" else translated).append(round(error, 3))
    first_listed: dict[str, int] = {}
    for sn in sorted(french.bodies):
        for cue_id in _CUE_ID.findall(french.bodies[sn]):
            first_listed.setdefault(cue_id, sn)
    leads, late = [], 0
    for key, cue in cues.items():
        sn = first_listed.get(key)
        if sn is None or cue["stream_s"] is None:
            continue
        leads.append(round(french.first_seen[sn] - server.wall_time_of(cue["stream_s"]), 3))
        shown = record["shown"].get(key)
        late += shown is None or shown > cue["start"] + 0.3
    lags = [round(french.first_seen[sn] - server.wall_time_of(server.timeline.segment_span_s(sn)[1]), 3)
            for sn in french.first_seen if sn in video.first_seen]
    return {
        "player_errors": record["errors"], "played_to_end": record["ended"],
        "tracks_offered": record["tracks"],
        "placement_s": {"french_sentences_own_words": stats(own), "other_sentences_machine_translation": stats(translated),
                        "sentences_without_a_cue_within_2s": unmatched},
        "subtitle_segment_listed_after_video_segment_aired_s": stats(lags),
        "cue_listed_after_its_words_aired_s": stats(leads),
        "player": {"behind_live_s": behind_s, "cues": len(cues), "on_screen_within_0_3s_of_start": len(cues) - late,
                   "late_or_never": late},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segment-s", type=float, nargs="+", default=[2.0, 6.0])
    parser.add_argument("--behind", type=float, default=20.0, help="the player's delay behind live (hls.js liveSyncDuration)")
    parser.add_argument("--wrap-at", type=float, default=90.0, help="stream second at which the PTS clock wraps")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    conditions = run_conditions()
    runs = {f"{segment_s:g}s_segments": measure(segment_s, args.behind, args.wrap_at) for segment_s in args.segment_s}
    write_result({
        "benchmark": "hls", **conditions, "model": "base",
        "source": "meeting.flac (176.6 s) as a live HLS webcast on 127.0.0.1: master + variant, H.264 160x90 + AAC, "
                  f"MPEG-TS, presentation clock wrapping at stream second {args.wrap_at:g}",
        "how": "relay serve on the master; hls.js 1.7.4 in headless Chromium playing /hls/master.m3u8 with the "
               "French track; playlists polled every 0.1 s from the bench's clock; cue times mapped back to the "
               "stream clock through the video fragments hls.js buffered; references: meeting.json",
        "runs": runs,
    }, args.out)


if __name__ == "__main__":
    main()
