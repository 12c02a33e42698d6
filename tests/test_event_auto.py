"""`relay transcribe EVENT.mka --booths auto`: the channels come from the language-tagged tracks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
from faster_whisper.audio import decode_audio

EVENT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "speech" / "interpretation"
WINDOW_S = (104.9, 125.6)  # the floor speaks Spanish (13, 14); the English booth is off mic
TRACKS = (("floor", "mul"), ("booth-en", "eng"), ("booth-fr", "fra"), ("booth-es", "spa"))


def write_event(path: Path) -> None:
    """A Matroska file with four language-tagged audio tracks, as an encoder would send."""
    with av.open(str(path), "w", format="matroska") as out:
        streams = []
        for name, tag in TRACKS:
            stream = out.add_stream("pcm_s16le", rate=16000)
            stream.layout = "mono"
            stream.metadata["language"] = tag
            samples = decode_audio(str(EVENT_DIR / f"{name}.flac"))[int(WINDOW_S[0] * 16000):int(WINDOW_S[1] * 16000)]
            streams.append((stream, (np.clip(samples, -1, 1) * 32767).astype(np.int16)))
        for start in range(0, len(streams[0][1]), 1600):  # interleaved, 100 ms at a time
            for stream, pcm in streams:
                frame = av.AudioFrame.from_ndarray(pcm[start:start + 1600].reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate = 16000
                frame.pts = start
                for packet in stream.encode(frame):
                    out.mux(packet)
        for stream, _ in streams:
            for packet in stream.encode(None):
                out.mux(packet)


def test_booths_auto_captions_every_tagged_track_into_tracks(tmp_path):
    write_event(tmp_path / "event.mka")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-m", "relay", "transcribe", "event.mka", "--booths", "auto", "--jsonl"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    finals = [r for r in lines if r["type"] == "final" and r["text"]]
    assert {r["channel"] for r in finals} >= {"floor", "booth-fr", "booth-es"}
    # booth-en is off mic for the whole window, but for the last 0.7 s of its previous sentence
    # ("...press star to cancel", ending at 105.6 s of the event) cut at the window's start.
    assert all(r["start"] < 0.7 for r in finals if r["channel"] == "booth-en"), finals
    assert all(r["lang"] == "es" for r in finals if r["channel"] in ("floor", "booth-es"))
    assert all(r["lang"] == "fr" for r in finals if r["channel"] == "booth-fr")
    by_lang = {lang: {t["source"] for t in lines if t["type"] == "track" and t["lang"] == lang}
               for lang in ("en", "fr", "es", "original")}
    assert by_lang == {"en": {"mt"}, "fr": {"interpretation"}, "es": {"floor"}, "original": {"floor"}}
