"""Benchmark of the transcription core on the real-speech meeting, streamed at real time.

    python -m bench.transcription [--loops N] [--model base]

Runs `relay serve meeting.flac --realtime` (Whisper, Apertium, SQLite, the server) as a
subprocess with one measuring viewer (bench.probe) that stamps every caption with the kernel's
receive time on its socket, and scores the finals against meeting.json: WER per language (and
offline faster-whisper on the same utterances as the ceiling), language ID, words in non-speech.

Delays run from the speech itself, located in the audio (bench.scoring.speech_span_s), not from
the clip boundaries of meeting.json: a final's from the end of its utterance's speech, a first
partial's (partials only) from its start. Each is given twice: at the viewer's socket (kernel
receive time minus the relay clock's zero in Unix time, see clock_zero) and as `wall` (the
relay's own stamp when it published). Resources: psutil samples of the relay process and its
Apertium children from "viewers open" (models loaded) to the session's end.
With --loops N the meeting is looped N times to look for drift.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import av
import numpy as np

from bench.probe import Arrival, MeasuringViewer
from bench.relay_run import ResourceSampler, histogram_ms, run_conditions, start_relay, stop_relay, write_result
from bench.scoring import (
    SPEECH_DIR, Event, assign_finals, load_events, percentile, reference_spans, wer, words_in_non_speech,
)
from relay.store import TranscriptStore, transcript_path

MEETING = SPEECH_DIR / "meeting.flac"
KINDS = ("partial", "final")


def _duration_s(path: Path) -> float:
    """Exact length of the recording: loop offsets are multiples of it."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return float(stream.duration * stream.time_base)


MEETING_SECONDS = _duration_s(MEETING)  # 176.60275 s (a rounded 176.576 skewed looped runs)


def looped_meeting(loops: int, directory: Path, seconds: float | None = None) -> Path:
    """Write the meeting (or its first `seconds`) N times end to end as one FLAC file."""
    from faster_whisper.audio import decode_audio

    audio = decode_audio(str(MEETING))[: None if seconds is None else int(seconds * 16000)]
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


def run_relay(source: Path, model: str, timeout_s: float) -> dict[str, Any]:
    """Stream the source at real time through `relay serve`; a measuring viewer records every caption."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        proc, url = start_relay(data, source, ["--model", model])
        sampler = ResourceSampler(proc.pid)
        probe = MeasuringViewer(url.replace("http", "ws", 1) + "/ws")
        try:
            probe.start()
            sampler.start()  # models loaded and Apertium started: what follows is the run itself
            if not probe.ended.wait(timeout_s):
                raise TimeoutError(f"the relay did not end the session within {timeout_s} s")
            resources = sampler.stop()
            mt_ms = histogram_ms(url, data, "relay_translation_seconds")
        finally:
            result = probe.stop()
            stop_relay(proc)
        with TranscriptStore(transcript_path(data), readonly=True) as store:
            stored = {f.seq: f.caption for f in store.all_finals() if f.track is None}  # channel finals, not tracks
    captions = viewer_captions(result.arrivals)
    return {
        "captions": captions,
        "mt_ms": mt_ms,
        "resources": resources,
        "probe": {"reads": result.reads, "reads_without_kernel_timestamp": result.reads_without_timestamp,
                  "reads_with_several_frames": result.reads_with_several_frames},
        "finals_match_transcript": {c["seq"]: c["text"] for c in captions if c["type"] == "final"}
        == {seq: c.text for seq, c in stored.items()},
    }


def viewer_captions(arrivals: list[Arrival]) -> list[dict[str, Any]]:
    """The captions a measuring viewer got, each with its `arrival`: partials, then every final once."""
    captions = [{**a.message, "arrival": a.kernel_s} for a in arrivals if a.message["type"] in KINDS]
    finals = {c["seq"]: c for c in reversed(captions) if c["type"] == "final"}  # first arrival per seq
    return [c for c in captions if c["type"] == "partial"] + sorted(finals.values(), key=lambda c: c["seq"])


def clock_zero(captions: list[dict[str, Any]]) -> float:
    """Unix time of the relay's stream clock zero: the smallest `sent - wall` of the run.

    `wall` is the relay's monotonic clock since the source opened, the clock that paces the file
    (stream second t is read at zero + t); `sent` is the Unix time the same caption was encoded.
    Their smallest difference is the zero plus the shortest stamp-to-send lag (about a millisecond).
    """
    return min(c["sent"] - c["wall"] for c in captions)


def score(events: list[Event], spans: dict[int, tuple[float, float]], captions: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-language WER, language ID, delays and non-speech words of one run."""
    finals = [c for c in captions if c["type"] == "final" and c["text"]]
    partials = [c for c in captions if c["type"] == "partial" and c["text"]]
    zero = clock_zero(captions)
    assigned = assign_finals(events, finals)
    partials_of = assign_finals(events, partials)  # by overlap: a partial may start in the padding before
    per_lang: dict[str, dict[str, list]] = {}
    socket_s, wall_s, clip_end_s, first_socket_s, first_wall_s, lang_right = [], [], [], [], [], 0
    for index, got in assigned.items():
        event, (speech_start, speech_end) = events[index], spans[index]
        bucket = per_lang.setdefault(event.lang, {"refs": [], "hyps": []})
        bucket["refs"].append(event.text)
        bucket["hyps"].append(" ".join(c["text"] for c in got))
        if got:
            langs = [c["lang"] for c in got]
            lang_right += max(set(langs), key=langs.count) == event.lang
            socket_s.append(max(c["arrival"] for c in got) - zero - speech_end)
            wall_s.append(max(c["wall"] for c in got) - speech_end)
            clip_end_s.append(max(c["wall"] for c in got) - event.end)
        first = partials_of[index]
        if first:
            first_socket_s.append(min(c["arrival"] for c in first) - zero - speech_start)
            first_wall_s.append(min(c["wall"] for c in first) - speech_start)
    return {
        "utterances": len(assigned),
        "wer": {lang: round(100 * wer(b["refs"], b["hyps"]), 1) for lang, b in sorted(per_lang.items())},
        "language_right": lang_right,
        "final_delay_s": {"viewer_socket": _stats(socket_s), "wall": _stats(wall_s),
                          "wall_after_clip_end": _stats(clip_end_s)},
        "first_partial_delay_s": {"viewer_socket": _stats(first_socket_s), "wall": _stats(first_wall_s),
                                  "utterances_with_a_partial": len(first_socket_s)},
        "words_in_non_speech": words_in_non_speech(events, finals),
        "finals": len(finals),
        "partials": len(partials),
        "clock_zero_unix": round(zero, 4),
    }


def _stats(values: list[float]) -> dict[str, float | int | None]:
    return {"p50": _r(percentile(values, 50)), "p95": _r(percentile(values, 95)),
            "max": _r(max(values, default=None)), "n": len(values)}


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


def looped_spans(
    events_per_loop: list[Event], spans_per_loop: dict[int, tuple[float, float]], loops: int, loop_s: float
) -> tuple[list[Event], dict[int, tuple[float, float]]]:
    """The meeting's events and speech spans repeated `loops` times, each loop `loop_s` later."""
    events, spans, n = [], {}, len(events_per_loop)
    for k in range(loops):
        shift = k * loop_s
        for i, e in enumerate(events_per_loop):
            events.append(Event(e.kind, e.start + shift, e.end + shift, e.lang, e.text, e.id))
            if i in spans_per_loop:
                spans[k * n + i] = (spans_per_loop[i][0] + shift, spans_per_loop[i][1] + shift)
    return events, spans


def drift(
    events_per_loop: list[Event],
    spans_per_loop: dict[int, tuple[float, float]],
    captions: list[dict],
    loops: int,
    loop_s: float = MEETING_SECONDS,
) -> dict[str, Any]:
    """Final delay after the end of speech in the first and last ten minutes of a looped run.

    `wall` always; at the viewer's socket too when the captions carry their `arrival`.
    """
    events, spans = looped_spans(events_per_loop, spans_per_loop, loops, loop_s)
    finals = [c for c in captions if c["type"] == "final" and c["text"]]
    zero = clock_zero(captions) if captions and all("arrival" in c for c in captions) else None
    rows = []  # (speech end, wall delay, socket delay)
    for index, got in assign_finals(events, finals).items():
        if got:
            end = spans[index][1]
            socket_s = max(c["arrival"] for c in got) - zero - end if zero is not None else None
            rows.append((end, max(c["wall"] for c in got) - end, socket_s))
    total = loops * loop_s

    def window(first_s: float, last_s: float) -> dict[str, Any]:
        kept = [r for r in rows if first_s <= r[0] <= last_s]
        out: dict[str, Any] = {"wall": _stats([r[1] for r in kept])}
        if zero is not None:
            out["viewer_socket"] = _stats([r[2] for r in kept])
        return out

    return {"audio_s": round(total, 1), "first_10min": window(0.0, 600.0), "last_10min": window(total - 600.0, total)}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loops", type=int, default=1)
    parser.add_argument("--model", default="base")
    parser.add_argument("--skip-offline", action="store_true")
    parser.add_argument("--seconds", type=float, default=None, help="only the meeting's first SECONDS (smoke test)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from faster_whisper.audio import decode_audio

    events = [e for e in load_events() if args.seconds is None or e.end <= args.seconds]
    spans = reference_spans(events, decode_audio(str(MEETING)))
    audio_s = (args.seconds or MEETING_SECONDS) * args.loops
    conditions = run_conditions()
    with tempfile.TemporaryDirectory() as tmp:
        whole = args.loops == 1 and args.seconds is None
        source = MEETING if whole else looped_meeting(args.loops, Path(tmp), args.seconds)
        run = run_relay(source, args.model, timeout_s=audio_s + 120.0)
    cpu = run["resources"]["cpu_s"]
    result: dict[str, Any] = {
        **conditions,
        "model": args.model,
        "loops": args.loops,
        "seconds_of_meeting": args.seconds,
        "audio_s": round(audio_s, 2),
        "streaming": score(events, spans, run["captions"]) if args.loops == 1 else None,
        "finals_match_transcript": run["finals_match_transcript"],
        "probe": run["probe"],
        "mt_ms": run["mt_ms"],
        "resources": run["resources"],
        "cpu_s_per_audio_s": {"relay_process": round(cpu["relay_process"] / audio_s, 3),
                              "apertium": round(cpu["apertium"] / audio_s, 4),
                              "total": round((cpu["relay_process"] + cpu["apertium"]) / audio_s, 3)},
    }
    if args.loops > 1:
        result["drift"] = drift(events, spans, run["captions"], args.loops, args.seconds or MEETING_SECONDS)
    if not args.skip_offline and args.loops == 1:
        result["offline"] = offline_ceiling(events, args.model)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
