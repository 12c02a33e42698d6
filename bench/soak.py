"""An hour of `relay serve` on the meeting looped: does delay drift or memory grow?

    python -m bench.soak [--loops 20]

Runs the whole relay (Whisper, translation, SQLite, the viewer server) on the meeting
looped N times (20 ≈ 59 minutes) at real time, samples its RSS every 10 s, and from the
durable transcript compares the final-caption delay (`wall`, after the end of the speech
located in the audio) of the first and last ten minutes. RSS and PSS are those of the relay
process and its Apertium children (bench.relay_run.ResourceSampler).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.relay_run import ResourceSampler, run_conditions, start_relay, stop_relay, wait_for_end, write_result
from bench.scoring import load_events, reference_spans
from bench.transcription import MEETING, MEETING_SECONDS, drift, looped_meeting
from relay.store import TranscriptStore, transcript_path


def run(loops: int, seconds: float | None = None) -> dict[str, Any]:
    """The looped meeting through `relay serve`; `seconds` cuts each loop short for a smoke test."""
    from faster_whisper.audio import decode_audio

    events = [e for e in load_events() if seconds is None or e.end <= seconds]
    spans = reference_spans(events, decode_audio(str(MEETING)))
    with tempfile.TemporaryDirectory() as tmp:
        source = looped_meeting(loops, Path(tmp), seconds)
        data = Path(tmp) / "data"
        proc, url = start_relay(data, source)
        sampler = ResourceSampler(proc.pid)
        total_s = loops * (seconds or MEETING_SECONDS)
        try:
            sampler.start()
            time.sleep(total_s)
            wait_for_end(url, data, 120.0)
            resources = sampler.stop()
        finally:
            stop_relay(proc)
        with TranscriptStore(transcript_path(data), readonly=True) as store:
            captions = [{"type": "final", **json.loads(f.frame_json)} for f in store.all_finals() if f.track is None]
    every_10_s = resources_samples(sampler.rss_mb, 10.0)
    return {
        "loops": loops,
        "audio_s": round(total_s, 1),
        "finals": len(captions),
        "delay": drift(events, spans, captions, loops, seconds or MEETING_SECONDS),
        "resources": resources,
        "rss_mb_relay_and_apertium": {
            "at_1_min": next((mb for t, mb in every_10_s if t >= 60), None),
            "at_end": every_10_s[-1][1] if every_10_s else None,
            "every_5_min": [[t, mb] for t, mb in every_10_s if int(t) % 300 < 10],
        },
        "cpu_s_per_audio_s": round(sum(resources["cpu_s"].values()) / total_s, 3),
    }


def resources_samples(samples: list[tuple[float, float]], every_s: float) -> list[tuple[float, float]]:
    """Thin (seconds, MB) samples to one per `every_s`."""
    kept: list[tuple[float, float]] = []
    for t, mb in samples:
        if not kept or t - kept[-1][0] >= every_s:
            kept.append((t, mb))
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loops", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=None, help="loop only the first SECONDS (smoke test)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    conditions = run_conditions()
    write_result({**conditions, **run(args.loops, args.seconds)}, args.out)


if __name__ == "__main__":
    main()
