"""The whole event with the real model and real speech: floor + three booths -> tracks.

Two stretches of /work/shared/speech/interpretation, read as fast as they decode (not
--realtime): 86.2-100.6 s (the floor speaks French: utterances 10-11) and 104.9-136.5 s (the
floor speaks Spanish: 13-16; the English booth drops out for 13-14, the Spanish booth relays
the floor).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from relay.output import track_record
from relay.tracks import TrackCaption

EVENT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "speech" / "interpretation"
CHANNELS = ("floor", "booth-en", "booth-fr", "booth-es")
WINDOWS = {"french-floor": (86.2, 100.6), "spanish-floor": (104.9, 136.5)}
LANGS = ("en", "fr", "es")


def _write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())


def _transcribe(workdir: Path, *extra: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run(
        [sys.executable, "-m", "relay", "transcribe", "floor.wav", "--jsonl", *extra],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def event() -> dict:
    return json.loads((EVENT_DIR / "event.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module", params=list(WINDOWS))
def run(request, tmp_path_factory, event) -> tuple[float, float, list[dict], list[dict]]:
    """(window start, end, utterances of event.json within it, the JSONL lines)."""
    start, end = WINDOWS[request.param]
    workdir = tmp_path_factory.mktemp(request.param)
    for name in CHANNELS:
        audio = decode_audio(str(EVENT_DIR / f"{name}.flac"))
        _write_wav(workdir / f"{name}.wav", audio[int(start * 16000):int(end * 16000)])
    booths = [arg for lang in LANGS for arg in ("--booth", f"{lang}=booth-{lang}.wav")]
    lines = _transcribe(workdir, *booths)
    utts = [u for u in event["utterances"] if u["start"] >= start and u["end"] <= end]
    return start, end, utts, lines


def _floor_finals(lines: list[dict]) -> list[dict]:
    return [r for r in lines if r["type"] == "final" and r["channel"] == "floor" and r["text"]]


def _utterance_of(final: dict, utts: list[dict], offset: float) -> dict:
    """The event utterance a floor final lies in (most overlap)."""
    def overlap(u: dict) -> float:
        return min(final["end"], u["end"] - offset) - max(final["start"], u["start"] - offset)
    return max(utts, key=overlap)


def test_every_line_names_its_channel_and_booths_are_decoded_in_their_language(run):
    _, _, utts, lines = run
    captions = [r for r in lines if r["type"] in ("partial", "final")]
    assert all("channel" in r for r in lines if r["type"] != "track")
    spoke = {r["channel"] for r in captions}
    assert spoke <= set(CHANNELS) and {"floor", "booth-en", "booth-es"} <= spoke  # booth-fr: silent at times
    for r in captions:
        if r["channel"] != "floor":
            assert r["lang"] == r["channel"].removeprefix("booth-"), r
    floor = _floor_finals(lines)
    assert floor, "the floor said nothing"
    assert all(r["lang"] in LANGS for r in floor)  # --languages defaults to the caption languages
    assert all(not r.get("translations") for r in lines if r["type"] == "final" and r["channel"] != "floor")
    assert all(r.get("translations") for r in floor)  # MT for the tracks


def test_each_floor_utterance_is_served_once_per_language_from_the_right_source(run, event):
    offset, _, utts, lines = run
    floor = _floor_finals(lines)
    tracks = [r for r in lines if r["type"] == "track"]
    dropout = event["dropout"]
    for lang in (*LANGS, "original"):
        track = [t for t in tracks if t["lang"] == lang]
        for final in floor:
            serving = [t for t in track if final["id"] in t["covers"]]
            sources = {t["source"] for t in serving}
            assert len(sources) == 1, (lang, final["id"], serving)  # never twice, never lost
            source = sources.pop()
            if source != "interpretation":
                assert len(serving) == 1, (lang, final["id"], serving)
            utt = _utterance_of(final, utts, offset)
            if lang == "original" or utt["lang"] == lang:
                expected = "floor"
            elif lang == dropout["booth"] and utt["n"] in dropout["utterances"]:
                expected = "mt"
            else:
                expected = "interpretation"
            assert source == expected, (lang, utt["n"], final, serving)
        booth = [t for t in track if t["source"] == "interpretation"]
        assert all(t["channel"] == f"booth-{lang}" for t in booth)
        assert all(t["floor_lang"] != lang for t in booth)  # the relay booth is never shown


def test_mt_track_captions_are_labelled_with_their_engine(run):
    _, _, _, lines = run
    mt = [t for t in lines if t["type"] == "track" and t["source"] == "mt"]
    assert all(t.get("mt_engine") for t in mt)


def test_without_booths_every_language_gets_a_track_at_once(tmp_path):
    audio = decode_audio(str(EVENT_DIR / "floor.flac"))
    _write_wav(tmp_path / "floor.wav", audio[int(86.2 * 16000):int(96.0 * 16000)])
    lines = _transcribe(tmp_path)
    floor = _floor_finals(lines)
    assert floor and all(r["lang"] == "fr" for r in floor)
    for lang in (*LANGS, "original"):
        track = [t for t in lines if t["type"] == "track" and t["lang"] == lang]
        assert [t["covers"] for t in track] == [[f["id"]] for f in floor]
        assert {t["source"] for t in track} == ({"floor"} if lang in ("fr", "original") else {"mt"})


def test_a_track_line_is_the_documented_record():
    track = TrackCaption("en", "mt", "floor", "en:u3", "Hello.", 1.0, 2.0, ("u3",), "fr", "apertium")
    assert track_record(track) == {
        "type": "track", "lang": "en", "id": "en:u3", "source": "mt", "channel": "floor",
        "text": "Hello.", "start": 1.0, "end": 2.0, "covers": ["u3"], "floor_lang": "fr",
        "mt_engine": "apertium",
    }
