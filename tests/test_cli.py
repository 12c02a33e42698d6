"""The relay command as a user runs it: real model, real files, real errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.scoring import wer
from tests.conftest import SPEECH_DIR

RELAY = str(Path(sys.executable).with_name("relay"))


def relay(*args: str, stdin: bytes | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([RELAY, *args], input=stdin, capture_output=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.decode().splitlines() if line.startswith("relay:")]
    assert len(errors) == 1, proc.stderr.decode()
    for needle in needles:
        assert needle in errors[0]
    assert "Traceback" not in proc.stderr.decode()


def test_wrong_url_is_one_line_error(unused_tcp_port):
    url = f"http://127.0.0.1:{unused_tcp_port}/live.m3u8"
    assert_one_line_error(relay("transcribe", url, "--jsonl"), url, "refused")


def test_missing_file_is_one_line_error(tmp_path):
    missing = str(tmp_path / "nope.flac")
    assert_one_line_error(relay("transcribe", missing), missing, "No such file")


def test_video_without_audio_is_one_line_error(video_only_file):
    assert_one_line_error(relay("transcribe", str(video_only_file)), "no audio stream")


def test_text_file_is_one_line_error(tmp_path):
    bogus = tmp_path / "notes.m3u8"
    bogus.write_text("this is not a playlist\n")
    assert_one_line_error(relay("transcribe", str(bogus)), str(bogus))


def test_unknown_model_is_one_line_error():
    proc = relay("transcribe", str(SPEECH_DIR / "clips" / "en-jfk.flac"), "--model", "huge-v9")
    assert_one_line_error(proc, "unknown model")


def test_stdin_is_transcribed_as_jsonl(clips):
    jfk = next(c for c in clips if c["id"] == "en-jfk")
    proc = relay("transcribe", "-", "--jsonl", stdin=(SPEECH_DIR / jfk["path"]).read_bytes())
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    captions = [c for c in lines if c["type"] != "track"]
    finals = [c for c in lines if c["type"] == "final"]
    assert finals and all(set(c) >= {"id", "lang", "text", "start", "end", "wall", "channel"} for c in captions)
    assert all(c["lang"] == "en" and c["channel"] == "floor" for c in finals)
    tracks = [c for c in lines if c["type"] == "track"]  # no booth: the floor and MT, one per final and language
    assert sorted(t["lang"] for t in tracks) == sorted(["en", "fr", "es", "original"] * len(finals))
    assert wer([jfk["text"]], [" ".join(c["text"] for c in finals)]) <= 0.2
    starts = [c["start"] for c in finals]
    assert starts == sorted(starts) and all(c["start"] < c["end"] for c in finals)


def test_default_output_is_readable_text(clips):
    clip = next(c for c in clips if c["id"] == "fr-ast-conf-getconfno")
    proc = relay("transcribe", str(SPEECH_DIR / clip["path"]))
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert lines and lines[0].startswith("[00:00:00 fr] ")
    assert "conférence" in proc.stdout.decode()


def test_realtime_captions_never_precede_their_audio(clips):
    clip = next(c for c in clips if c["id"] == "es-ast-conf-kicked")
    proc = relay("transcribe", str(SPEECH_DIR / clip["path"]), "--realtime", "--jsonl")
    captions = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    captions = [c for c in captions if c["type"] != "track"]
    assert any(c["type"] == "partial" for c in captions)
    assert captions and all(c["wall"] >= c["end"] for c in captions)


def test_corrupt_packets_mid_stream_are_skipped(tmp_path, speech_dir):
    """A damaged stretch of an ADTS/AAC stream costs a few words, not the rest of the event."""
    import av
    import numpy as np

    from tests.conftest import load_audio

    audio = np.concatenate([load_audio(speech_dir / "clips" / "en-jfk.flac"), load_audio(speech_dir / "clips" / "es-ast-conf-kicked.flac")])
    path = tmp_path / "damaged.aac"
    with av.open(str(path), "w", format="adts") as out:
        stream = out.add_stream("aac", rate=16000, layout="mono")
        for start in range(0, len(audio), 1024):
            frame = av.AudioFrame.from_ndarray(audio[None, start : start + 1024], format="flt", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    proc = relay("transcribe", str(path), "--jsonl")
    assert proc.returncode == 0, proc.stderr.decode()
    finals = [json.loads(line) for line in proc.stdout.decode().splitlines() if '"final"' in line]
    assert any(c["lang"] == "en" and "country" in c["text"].lower() for c in finals)
    assert any(c["lang"] == "es" and "conferencia" in c["text"].lower() for c in finals)
