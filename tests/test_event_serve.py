"""`relay serve FLOOR --booth ...`: the event behind a real server, its tracks in the transcript."""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
from faster_whisper.audio import decode_audio

from tests.test_source_lifecycle import RELAY, Serve

EVENT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "speech" / "interpretation"
WINDOW_S = (104.9, 125.6)  # the floor speaks Spanish (13, 14); the English booth is off mic


def _write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())


def _export(data: Path, lang: str) -> list[dict]:
    done = subprocess.run([RELAY, "export", "--data", str(data), "--format", "json", "--lang", lang],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_serve_with_booths_keeps_every_track(tmp_path):
    for name in ("floor", "booth-en", "booth-fr", "booth-es"):
        audio = decode_audio(str(EVENT_DIR / f"{name}.flac"))
        _write_wav(tmp_path / f"{name}.wav", audio[int(WINDOW_S[0] * 16000):int(WINDOW_S[1] * 16000)])
    data = tmp_path / "data"
    booths = [a for lang in ("en", "fr", "es") for a in ("--booth", f"{lang}={tmp_path / f'booth-{lang}.wav'}")]
    relay = Serve(str(tmp_path / "floor.wav"), data, *booths)
    try:
        status = relay.wait_for(
            lambda s: all(c["source"]["state"] == "ended" for c in s["channels"].values()), 300, "ended")
        assert set(status["channels"]) == {"floor", "booth-en", "booth-fr", "booth-es"}
        assert status["channels"]["floor"]["finals"] >= 2 and status["channels"]["booth-fr"]["speech_s"] > 5
        stopped = subprocess.run([RELAY, "stop", "--data", str(data)], capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        relay.proc.wait(timeout=60)
    finally:
        relay.kill()
    assert relay.proc.returncode == 0, "".join(relay.stderr)[-3000:]
    english = _export(data, "en")
    assert english and {c["source"] for c in english} == {"mt"}  # the English booth was off mic throughout
    french = _export(data, "fr")
    assert french and {c["source"] for c in french} == {"interpretation"}
    assert {c["channel"] for c in french} == {"booth-fr"}
    spanish = _export(data, "es")
    assert spanish and {c["source"] for c in spanish} == {"floor"}  # the relay booth never doubles it
