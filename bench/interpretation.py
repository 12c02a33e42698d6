"""Benchmark of an interpreted event: what a viewer of each language reads, and how late.

    python -m bench.interpretation [--seconds N] [--loops N] [--multitrack] [--model base]

Streams ../shared/speech/interpretation at real time through `relay serve floor.flac --booth
en=booth-en.flac --booth fr=... --booth es=... --realtime` (or `event.mka --booths auto` with
--multitrack), with one measuring viewer (bench.probe) stamping every message with the kernel's
receive time on its socket. Per language L, what a viewer of L reads (the `track` messages of L,
in seq order, cross-checked with `relay export --lang L --format json`) is scored against the
human text in L (event.json `refs[L]`, joined): chrF (sacrebleu, accents folded on both sides, one
document) next to the issue's offline figures, and its length against the reference. Per channel
(the floor, each booth): final delay after the end of each utterance's speech (located in that
channel's audio by bench.scoring.speech_span_s) at the viewer's socket, first partial delay,
partials, and booth words captioned where event.json has the booth silent. Resources: psutil
(relay and its Apertium children). With --loops N every channel is looped N times (6: 30 min)
and delays are given for the first and last ten minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from bench.interpretation_scoring import (
    EVENT_DIR, FLOOR, LANGS, Utterance, channel_delays, channel_name, channel_utterances, drift, dropout_window,
    load_event, score_tracks, silent_booth_finals, silent_booth_words, track_delays, word_count,
)
from bench.probe import MeasuringViewer
from bench.relay_run import RELAY, ResourceSampler, run_conditions, start_relay, stop_relay, write_result
from bench.scoring import speech_span_s
from bench.transcription import clock_zero

RATE = 16_000
QUIET_S = 5.0  # after every channel ended: no new numbered message for this long, the run is over
QUIET_MAX_S = 40.0


def speech_spans(utterances: list[Utterance], audio: dict[str, np.ndarray]) -> list[tuple[float, float]]:
    """Where each utterance's speech starts and ends in its own channel's audio."""
    return [speech_span_s(audio[u.channel][int(round(u.start * RATE)) : int(round(u.end * RATE))], u.start)
            for u in utterances]


def channel_audio(seconds: float | None) -> dict[str, np.ndarray]:
    """Each channel's samples (16 kHz mono), cut to its first `seconds`."""
    from faster_whisper.audio import decode_audio

    return {channel: decode_audio(str(EVENT_DIR / f"{channel}.flac"))[: None if seconds is None else int(seconds * RATE)]
            for channel in (FLOOR, *map(channel_name, LANGS))}


def looped_spans(spans: list[tuple[float, float]], loops: int, loop_s: float) -> list[tuple[float, float]]:
    """Speech spans of one pass repeated `loops` times, in the order of `channel_utterances`."""
    return [(a + k * loop_s, b + k * loop_s) for k in range(loops) for a, b in spans]


def write_flac(samples: np.ndarray, target: Path, loops: int) -> Path:
    """Write 16 kHz mono samples `loops` times end to end as one FLAC file."""
    with av.open(str(target), "w") as out:
        stream = out.add_stream("flac", rate=RATE, layout="mono")
        for _ in range(loops):
            for start in range(0, len(samples), RATE):
                piece = (samples[start : start + RATE] * 32767).astype(np.int16).reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(piece, format="s16", layout="mono")
                frame.sample_rate = RATE
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return target


def relay_arguments(
    audio: dict[str, np.ndarray], mode: str, loops: int, directory: Path
) -> tuple[Path, list[str]]:
    """The floor source and the booth options: the event's own files, event.mka, or cut/looped copies."""
    if mode == "multitrack":
        return EVENT_DIR / "event.mka", ["--booths", "auto"]
    if mode == "whole":
        files = {c: EVENT_DIR / f"{c}.flac" for c in audio}
    else:
        files = {c: write_flac(samples, directory / f"{c}.flac", loops) for c, samples in audio.items()}
    return files[FLOOR], [arg for lang in LANGS for arg in ("--booth", f"{lang}={files[channel_name(lang)]}")]


def wait_until_over(probe: MeasuringViewer, channels: int, timeout_s: float) -> list[str] | None:
    """Until every channel's source ended and no final or track caption came for QUIET_S, or
    QUIET_MAX_S after the floor ended; the channels seen ended, None on timeout."""
    deadline = time.monotonic() + timeout_s
    floor_ended: float | None = None
    while time.monotonic() < deadline:
        arrivals = list(probe.result.arrivals)
        ended = {str(a.message.get("channel")) for a in arrivals
                 if a.message.get("type") == "status" and a.message.get("state") == "ended"}
        if FLOOR in ended:
            floor_ended = floor_ended or time.monotonic()
            last = max((a.read_s for a in arrivals if a.message.get("type") in ("final", "track")), default=0.0)
            quiet = len(ended) >= channels and time.time() - last >= QUIET_S
            if quiet or time.monotonic() - floor_ended >= QUIET_MAX_S:
                return sorted(ended)
        time.sleep(0.5)
    return None


def export_track(data: Path, lang: str) -> list[dict[str, Any]]:
    """`relay export --lang L --format json` of the run's transcript."""
    done = subprocess.run([str(RELAY), "export", "--lang", lang, "--format", "json", "--data", str(data)],
                          capture_output=True, text=True, timeout=60, check=True)
    return list(json.loads(done.stdout))


def run_relay(source: Path, extra: list[str], model: str, timeout_s: float) -> dict[str, Any]:
    """Stream the event through `relay serve --realtime`; a measuring viewer records every message."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        proc, url = start_relay(data, source, ["--model", model, *extra])
        sampler = ResourceSampler(proc.pid)
        probe = MeasuringViewer(url.replace("http", "ws", 1) + "/ws")
        try:
            probe.start()
            sampler.start()  # models loaded and Apertium started: what follows is the run itself
            ended = wait_until_over(probe, 1 + len(LANGS), timeout_s)
            if ended is None:
                raise TimeoutError(f"the floor did not end within {timeout_s} s")
            resources = sampler.stop()
        finally:
            result = probe.stop()
            stop_relay(proc)
        exported = {lang: export_track(data, lang) for lang in LANGS}
    messages = [{**a.message, "arrival": a.kernel_s} for a in result.arrivals]
    return {"messages": messages, "exported": exported, "resources": resources, "channels_ended": ended,
            "probe": {"reads": result.reads, "reads_without_kernel_timestamp": result.reads_without_timestamp,
                      "reads_with_several_frames": result.reads_with_several_frames}}


def score(event: dict[str, Any], run: dict[str, Any], audio: dict[str, np.ndarray], seconds: float | None,
          loops: int, loop_s: float) -> dict[str, Any]:
    """Every figure of one run."""
    messages = run["messages"]
    captions = [m for m in messages if m.get("type") in ("partial", "final")]
    zero = clock_zero([c for c in captions if "sent" in c and "wall" in c])
    utterances = channel_utterances(event, seconds, loops, loop_s)
    spans = looped_spans(speech_spans(channel_utterances(event, seconds, 1, loop_s), audio), loops, loop_s)
    finals = [c for c in captions if c["type"] == "final" and c["text"].strip()]
    speaking = channel_utterances(event, seconds, loops, loop_s, begun=True)  # a cut utterance still speaks
    dropout = dropout_window(event, loops, loop_s)
    dropout_channel = channel_name(event.get("dropout", {}).get("booth", ""))
    in_dropout = [f for f in silent_booth_finals(speaking, finals) if f["channel"] == dropout_channel
                  and any(a <= (f["start"] + f["end"]) / 2 <= b for a, b in dropout)]
    floor_spans = {i: spans[i] for i, u in enumerate(utterances) if u.channel == FLOOR}
    result = {"tracks": score_tracks(event, messages, run["exported"], seconds, loops),
              "track_delay_s": track_delays(utterances, floor_spans, messages, zero),
              "channels": channel_delays(utterances, spans, captions, zero),
              "words_on_silent_booths": silent_booth_words(speaking, finals, [channel_name(x) for x in LANGS]),
              "words_in_dropout": {"booth": dropout_channel, "words": word_count(in_dropout)},
              "clock_zero_unix": round(zero, 4)}
    if loops > 1:
        result["drift"] = drift(utterances, spans, captions, zero, loops * loop_s)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="base")
    parser.add_argument("--seconds", type=float, default=None, help="only the event's first SECONDS of every channel")
    parser.add_argument("--loops", type=int, default=1, help="loop every channel N times (6: 30 minutes)")
    parser.add_argument("--multitrack", action="store_true", help="event.mka with --booths auto (the whole event once)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.multitrack and (args.seconds is not None or args.loops != 1):
        parser.error("--multitrack takes the whole event once: no --seconds or --loops")
    event = load_event()
    audio = channel_audio(args.seconds)
    loop_s = len(audio[FLOOR]) / RATE  # exact: loop k starts k × this later
    mode = "multitrack" if args.multitrack else "whole" if args.seconds is None and args.loops == 1 else "copies"
    conditions = run_conditions()
    with tempfile.TemporaryDirectory() as tmp:
        source, extra = relay_arguments(audio, mode, args.loops, Path(tmp))
        run = run_relay(source, extra, args.model, timeout_s=loop_s * args.loops + 180.0)
    audio_s = loop_s * args.loops
    cpu = run["resources"]["cpu_s"]
    result: dict[str, Any] = {
        **conditions, "model": args.model, "source": {"multitrack": "event.mka --booths auto", "whole": "the four files",
                                             "copies": "the four files cut/looped"}[mode],
        "channels_ended": run["channels_ended"],
        "seconds_of_event": args.seconds, "loops": args.loops, "audio_s": round(audio_s, 2),
        **score(event, run, audio, args.seconds, args.loops, loop_s),
        "probe": run["probe"], "resources": run["resources"],
        "cpu_s_per_audio_s": {"relay_process": round(cpu["relay_process"] / audio_s, 3),
                              "apertium": round(cpu["apertium"] / audio_s, 4),
                              "total": round((cpu["relay_process"] + cpu["apertium"]) / audio_s, 3)},
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
