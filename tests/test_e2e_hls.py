"""End to end: a real HLS livestream on 127.0.0.1 into `relay transcribe --jsonl`, with an outage."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.scoring import Event, assign_finals, normalise, wer, words_in_non_speech
from tests.test_translation_router import detected_language

RELAY = str(Path(sys.executable).with_name("relay"))
SPEED = 2.0  # the stream airs twice as fast as real time, to keep CI short
OUTAGE_STREAM_S = (80.0, 90.0)  # the HLS server is down between these stream times


class RelayProcess:
    """`relay transcribe URL --jsonl` in a subprocess, its lines collected as they come."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [RELAY, "transcribe", url, "--jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.captions: list[dict] = []
        self.tracks: list[dict] = []  # {"type": "track"} lines
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self._caption), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr.append), daemon=True).start()

    def _caption(self, line: str) -> None:
        record = json.loads(line)
        (self.tracks if record["type"] == "track" else self.captions).append(record)

    @staticmethod
    def _read(stream, handle) -> None:
        for line in stream:
            handle(line)


@pytest.fixture(scope="module")
def outage_run(request):
    from tests.support.live_hls import LiveHlsServer
    from tests.support.media import MEETING_FLAC

    server = LiveHlsServer(MEETING_FLAC, speed=SPEED).start()
    relay = RelayProcess(server.url)
    try:
        _sleep_until(server.wall_time_of(OUTAGE_STREAM_S[0]))
        server.stop()
        assert relay.proc.poll() is None, "relay exited when the stream went away"
        _sleep_until(server.wall_time_of(OUTAGE_STREAM_S[1]))
        server.start()
        relay.proc.wait(timeout=(180 - OUTAGE_STREAM_S[1]) / SPEED + 60)
    finally:
        if relay.proc.poll() is None:
            relay.proc.kill()
        server.close()
    time.sleep(0.2)  # let the reader threads drain the pipes
    return relay


def _sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.monotonic()))


def _events(meeting_events) -> list[Event]:
    return [Event(e["kind"], e["start"], e["end"], e.get("lang", ""), e.get("text", ""), e.get("id", ""))
            for e in meeting_events]


def test_relay_ends_cleanly_when_the_live_stream_ends(outage_run):
    assert outage_run.proc.returncode == 0, "".join(outage_run.stderr)


def test_relay_reconnects_after_the_server_comes_back(outage_run):
    log = "".join(outage_run.stderr)
    assert "reconnecting" in log and "Reconnected" in log
    after = [c for c in outage_run.captions if c["type"] == "final" and c["start"] > OUTAGE_STREAM_S[1]]
    assert len(after) >= 8


def test_finals_match_the_speech_in_order(outage_run, meeting_events):
    events = _events(meeting_events)
    finals = [c for c in outage_run.captions if c["type"] == "final" and c["text"]]
    assert [c["start"] for c in finals] == sorted(c["start"] for c in finals)
    assert len({c["id"] for c in finals}) == len(finals)
    heard = {i: got for i, got in assign_finals(events, finals).items()
             if events[i].end < OUTAGE_STREAM_S[0] - 2 or events[i].start > OUTAGE_STREAM_S[1] + 8}
    assert len(heard) >= 20
    for index, got in heard.items():
        event = events[index]
        assert got, f"no final for {event.id}"
        assert wer([event.text], [" ".join(c["text"] for c in got)]) <= 0.5, event.id
        assert all(c["lang"] == event.lang for c in got), event.id


def test_nothing_is_captioned_in_silence_noise_or_music(outage_run, meeting_events):
    finals = [c for c in outage_run.captions if c["type"] == "final" and c["text"]]
    assert words_in_non_speech(_events(meeting_events), finals) == 0


def test_partials_precede_finals_and_share_their_id(outage_run):
    seen_final: set[str] = set()
    partial_ids = set()
    for caption in outage_run.captions:
        assert set(caption) >= {"type", "id", "lang", "text", "start", "end", "wall"}
        if caption["type"] == "partial":
            assert caption["id"] not in seen_final
            partial_ids.add(caption["id"])
        else:
            seen_final.add(caption["id"])
    assert partial_ids and partial_ids <= seen_final
    assert all(normalise(c["text"]) for c in outage_run.captions if c["type"] == "partial")


def test_finals_carry_english_french_and_spanish(outage_run):
    finals = [c for c in outage_run.captions if c["type"] == "final" and c["text"]]
    for caption in finals:
        assert set(caption["translations"]) == {"en", "fr", "es"}
        assert caption["translations"][caption["lang"]] == caption["text"]
        assert set(caption["mt"]) == {"en", "fr", "es"} - {caption["lang"]}
        assert all("apertium" in label for label in caption["mt"].values())
    long_enough = [c for c in finals if len(c["text"].split()) >= 6]
    for target in ("en", "fr", "es"):
        translated = [c["translations"][target] for c in long_enough if c["lang"] != target]
        right = sum(detected_language(text) == target for text in translated)
        assert translated and right >= 0.8 * len(translated), target


def test_long_finals_are_split_into_readable_captions(outage_run):
    finals = [c for c in outage_run.captions if c["type"] == "final" and c["text"]]
    assert all(len(c["text"]) <= 2 * 42 for c in finals)
    assert any("." in c["id"] for c in finals)  # the 14 s menu prompt needs more than one caption


def test_without_booths_every_final_is_in_every_language_track_in_order(outage_run):
    finals = [c for c in outage_run.captions if c["type"] == "final" and c["text"]]
    for lang in ("en", "fr", "es", "original"):
        track = [t for t in outage_run.tracks if t["lang"] == lang]
        assert [t["covers"] for t in track] == [[c["id"]] for c in finals], lang
        for t, final in zip(track, finals):
            assert t["source"] == ("floor" if lang in ("original", final["lang"]) else "mt")
