"""An hour of `relay serve` on the meeting looped: does delay drift or memory grow?

    python -m bench.soak [--loops 20]

Runs the whole relay (Whisper, translation, SQLite, the viewer server) on the meeting
looped N times (20 ≈ 59 minutes) at real time, samples its RSS every 10 s, and from the
durable transcript compares the final-caption delay of the first and last ten minutes.
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.live_viewers import _record, _start_relay, _wait_for_end
from bench.scoring import load_events
from bench.transcription import MEETING_SECONDS, drift, looped_meeting
from relay.store import TranscriptStore, transcript_path


def run(loops: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        source = looped_meeting(loops, Path(tmp))
        data = Path(tmp) / "data"
        proc, url = _start_relay(data, source)
        relay = psutil.Process(proc.pid)
        rss: list[tuple[float, float]] = []
        started = time.monotonic()
        total_s = loops * MEETING_SECONDS
        try:
            while time.monotonic() - started < total_s + 5:
                rss.append((round(time.monotonic() - started), relay.memory_info().rss / 2**20))
                time.sleep(10.0)
            _wait_for_end(url, data, 120.0)
            cpu = relay.cpu_times()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        with TranscriptStore(transcript_path(data), readonly=True) as store:
            captions = [{"type": "final", **_record(f)} for f in store.all_finals()]
    after_warmup = [mb for t, mb in rss if t >= 60]
    return {
        "loops": loops,
        "audio_s": round(total_s, 1),
        "finals": len(captions),
        "delay": drift(load_events(), captions, loops),
        "rss_mb": {
            "at_1_min": round(after_warmup[0], 1),
            "at_end": round(rss[-1][1], 1),
            "max": round(max(mb for _, mb in rss), 1),
            "samples": [[t, round(mb, 1)] for t, mb in rss[::30]],
        },
        "cpu_s_per_audio_s": round((cpu.user + cpu.system) / total_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loops", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    text = json.dumps(run(args.loops), indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
