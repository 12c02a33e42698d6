"""Benchmark of the transcription core on the real-speech meeting, streamed at real time.

    python -m bench.transcription [--loops N] [--model base]

Runs `relay transcribe meeting.flac --realtime --jsonl` as a subprocess and scores its
finals against meeting.json: WER per language (and offline faster-whisper on the same
utterances as the ceiling), delays, words in non-speech, peak RSS and CPU per audio second.
With --loops N the meeting is looped N times to look for drift.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from bench.scoring import (
    SPEECH_DIR, Event, assign_finals, load_events, percentile, wer, words_in_non_speech,
)

RELAY = Path(sys.executable).with_name("relay")
MEETING = SPEECH_DIR / "meeting.flac"


def _duration_s(path: Path) -> float:
    """Exact length of the recording: loop offsets are multiples of it."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return float(stream.duration * stream.time_base)


MEETING_SECONDS = _duration_s(MEETING)  # 176.60275 s (a rounded 176.576 skewed looped runs)


def looped_meeting(loops: int, directory: Path) -> Path:
    """Write the meeting N times end to end as one FLAC file."""
    from faster_whisper.audio import decode_audio

    audio = decode_audio(str(MEETING))
    target = directory / f"meeting-x{loops}.flac"
    with av.open(str(target), "w") as out:
        stream = out.add_stream("flac", rate=16000, layout="mono")
        for _ in range(loops):
            for start in range(0, len(audio), 16000):
                piece = (audio[start : start + 16000] * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(piece.reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate = 16000
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return target


def run_relay(source: Path, model: str, extra: list[str] | None = None) -> dict[str, Any]:
    """Stream the source at real time through relay; collect captions and resource use."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(
        [str(RELAY), "transcribe", str(source), "--realtime", "--jsonl", "--model", model, *(extra or [])],
        capture_output=True, text=True, check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    captions = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return {
        "captions": captions,
        "wall_s": time.monotonic() - started,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_rss_mb": after.ru_maxrss / 1024,
    }


def score(events: list[Event], captions: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-language WER, language ID, delays and non-speech words of one run."""
    finals = [c for c in captions if c["type"] == "final" and c["text"]]
    assigned = assign_finals(events, finals)
    per_lang: dict[str, dict[str, list]] = {}
    final_delays, partial_delays, lang_right = [], [], 0
    for index, got in assigned.items():
        event = events[index]
        bucket = per_lang.setdefault(event.lang, {"refs": [], "hyps": []})
        bucket["refs"].append(event.text)
        bucket["hyps"].append(" ".join(c["text"] for c in got))
        if got:
            langs = [c["lang"] for c in got]
            lang_right += max(set(langs), key=langs.count) == event.lang
            final_delays.append(max(c["wall"] for c in got) - event.end)
        first = [c["wall"] for c in captions if event.start <= c["start"] < event.end and c["text"]]
        if first:
            partial_delays.append(min(first) - event.start)
    return {
        "utterances": len(assigned),
        "wer": {lang: round(100 * wer(b["refs"], b["hyps"]), 1) for lang, b in sorted(per_lang.items())},
        "language_right": lang_right,
        "final_delay_s": {"p50": _r(percentile(final_delays, 50)), "p95": _r(percentile(final_delays, 95)),
                          "max": _r(max(final_delays, default=None))},
        "first_partial_delay_s": {"p50": _r(percentile(partial_delays, 50)),
                                  "p95": _r(percentile(partial_delays, 95))},
        "words_in_non_speech": words_in_non_speech(events, finals),
        "translated_final_delay_ms": {
            "p50": _r(percentile([c["mt_ms"] for c in finals if "mt_ms" in c], 50)),
            "p95": _r(percentile([c["mt_ms"] for c in finals if "mt_ms" in c], 95)),
        },
        "finals": len(finals),
        "partials": sum(1 for c in captions if c["type"] == "partial"),
    }


def offline_ceiling(events: list[Event], model: str) -> dict[str, Any]:
    """Offline faster-whisper (beam 5, VAD, auto language) on each whole utterance."""
    from faster_whisper import WhisperModel
    from faster_whisper.audio import decode_audio

    from relay.modelstore import resolve_model

    whisper = WhisperModel(str(resolve_model(model)), device="cpu", compute_type="int8")
    audio = decode_audio(str(MEETING))
    per_lang: dict[str, dict[str, list]] = {}
    lang_right = 0
    for event in (e for e in events if e.kind == "speech"):
        clip = audio[int(event.start * 16000) : int(event.end * 16000)]
        segments, info = whisper.transcribe(clip, beam_size=5, vad_filter=True)
        text = " ".join(s.text for s in segments)
        lang_right += info.language == event.lang
        bucket = per_lang.setdefault(event.lang, {"refs": [], "hyps": []})
        bucket["refs"].append(event.text)
        bucket["hyps"].append(text)
    return {
        "wer": {lang: round(100 * wer(b["refs"], b["hyps"]), 1) for lang, b in sorted(per_lang.items())},
        "language_right": lang_right,
    }


def translation_cpu(captions: list[dict[str, Any]], audio_s: float) -> dict[str, Any]:
    """CPU the interpretation of this run's finals costs (relay and Apertium processes),
    as a share of one core over the duration of the audio."""
    import psutil

    from relay.translation import CaptionTranslator

    finals = [c for c in captions if c["type"] == "final" and c["text"]]
    translator = CaptionTranslator()
    translator.warm_up()
    me = psutil.Process()

    def cpu() -> float:
        times = [me.cpu_times()] + [p.cpu_times() for p in me.children(recursive=True)]
        return sum(t.user + t.system for t in times)

    before = cpu()
    for caption in finals:
        translator.translate(caption["text"], caption["lang"])
    used = cpu() - before
    translator.close()
    return {"captions": len(finals), "cpu_s": round(used, 2), "share_of_one_core": round(used / audio_s, 4)}


def drift(events_per_loop: list[Event], captions: list[dict], loops: int) -> dict[str, Any]:
    """Final delay in the first and last ten minutes of a looped run."""
    events = [
        Event(e.kind, e.start + k * MEETING_SECONDS, e.end + k * MEETING_SECONDS, e.lang, e.text, e.id)
        for k in range(loops) for e in events_per_loop
    ]
    finals = [c for c in captions if c["type"] == "final" and c["text"]]
    delays = []
    for index, got in assign_finals(events, finals).items():
        if got:
            delays.append((events[index].end, max(c["wall"] for c in got) - events[index].end))
    total = loops * MEETING_SECONDS
    first = [d for t, d in delays if t <= 600]
    last = [d for t, d in delays if t >= total - 600]
    return {
        "audio_s": round(total, 1),
        "first_10min": {"p50": _r(percentile(first, 50)), "p95": _r(percentile(first, 95)), "n": len(first)},
        "last_10min": {"p50": _r(percentile(last, 50)), "p95": _r(percentile(last, 95)), "n": len(last)},
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loops", type=int, default=1)
    parser.add_argument("--model", default="base")
    parser.add_argument("--skip-offline", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    events = load_events()
    with tempfile.TemporaryDirectory() as tmp:
        source = MEETING if args.loops == 1 else looped_meeting(args.loops, Path(tmp))
        run = run_relay(source, args.model)
    audio_s = MEETING_SECONDS * args.loops
    result: dict[str, Any] = {
        "model": args.model,
        "loops": args.loops,
        "cpu_cores": os.cpu_count(),
        "streaming": score(events, run["captions"]) if args.loops == 1 else None,
        "peak_rss_mb": round(run["peak_rss_mb"]),
        "cpu_s_per_audio_s": round(run["cpu_s"] / audio_s, 3),
    }
    if args.loops > 1:
        result["drift"] = drift(events, run["captions"], args.loops)
    else:
        result["translation_cpu"] = translation_cpu(run["captions"], audio_s)
    if not args.skip_offline and args.loops == 1:
        result["offline"] = offline_ceiling(events, args.model)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
