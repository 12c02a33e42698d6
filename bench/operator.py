"""Operator-facing timings: `relay start` to ready, and captions again after the source returns.

    python -m bench.operator [--trials 3]

- ready: wall time of `relay start CLIP --realtime --data TMP` until it prints the URL (the
  models are loaded and the source is open), then `relay stop`.
- recovery: a live HLS stream of the meeting at real time (tests.support.live_hls) is stopped
  at stream 20 s and restarted at 32 s, while someone is speaking; the time from the restart
  to the first caption line `relay transcribe URL --jsonl` prints after it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.relay_run import run_conditions, write_result
from bench.scoring import SPEECH_DIR

RELAY = str(Path(sys.executable).with_name("relay"))


def time_to_ready() -> float:
    with tempfile.TemporaryDirectory() as data:
        started = time.monotonic()
        subprocess.run([RELAY, "start", str(SPEECH_DIR / "clips" / "en-jfk.flac"), "--realtime", "--port", "0",
                        "--data", data], check=True, capture_output=True)
        ready = time.monotonic() - started
        subprocess.run([RELAY, "stop", "--data", data], check=True, capture_output=True)
    return ready


def time_to_recover() -> float | None:
    from tests.support.live_hls import LiveHlsServer

    server = LiveHlsServer(SPEECH_DIR / "meeting.flac").start()
    proc = subprocess.Popen([RELAY, "transcribe", server.url, "--jsonl"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    lines: list[float] = []
    threading.Thread(target=lambda: [lines.append(time.monotonic()) for _ in proc.stdout], daemon=True).start()
    try:
        time.sleep(max(0.0, server.wall_time_of(20.0) - time.monotonic()))
        server.stop()
        time.sleep(max(0.0, server.wall_time_of(32.0) - time.monotonic()))
        server.start()
        back = time.monotonic()
        time.sleep(10.0)
        after = [t for t in lines if t > back]
        return round(after[0] - back, 2) if after else None
    finally:
        proc.terminate()
        proc.wait(30)
        server.close()


def run(trials: int) -> dict[str, Any]:
    ready = [time_to_ready() for _ in range(trials)]
    recover = [time_to_recover() for _ in range(trials)]
    return {
        "start_to_ready_s": {"median": round(statistics.median(ready), 2), "all": [round(r, 2) for r in ready]},
        "captions_after_source_returns_s": {
            "median": statistics.median([r for r in recover if r is not None]) if any(recover) else None,
            "all": recover,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    conditions = run_conditions()
    write_result({**conditions, **run(args.trials)}, args.out)


if __name__ == "__main__":
    main()
