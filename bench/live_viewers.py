"""Viewers on a relay that is really transcribing: delivery delay, RSS per viewer, caption delay.

    python -m bench.live_viewers [--viewers 0,1000,5000] [--stalled 0.1]

Each point runs `relay serve meeting.flac --realtime` (Whisper, translation, SQLite, the
viewer server: the whole product) and, in a separate process, N `websockets` Sans-I/O
viewers (bench.viewers' clients), 10 % of them stalled in the last point. It reports the
publish → receive delay of every caption (p50/p99, from each caption's `sent`), the relay's
RSS per viewer against the run without viewers, and the final-caption delay after each
utterance (from the durable transcript) to show viewers do not slow the captioning.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.scoring import load_events
from bench.transcription import MEETING, score
from bench.viewers import Point, _recv_within, _viewers_process, raise_fd_limit
from relay.store import TranscriptStore, transcript_path

RELAY = Path(sys.executable).with_name("relay")


def _start_relay(data: Path, source: Path = MEETING) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [str(RELAY), "serve", str(source), "--realtime", "--port", "0", "--data", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    line = proc.stdout.readline()
    if "viewers open" not in line:
        raise RuntimeError(f"relay did not start: {line!r}")
    return proc, line.split("viewers open ", 1)[1].strip().rstrip("/")


def _wait_for_end(url: str, data: Path, timeout_s: float) -> None:
    """Until the relay reports its source ended (the transcript is then complete)."""
    token = (data / "operator.token").read_text().strip()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        request = urllib.request.Request(url + "/api/status", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            if json.loads(response.read())["source"]["state"] == "ended":
                return
        time.sleep(1.0)


def run_point(viewers: int, stalled: int) -> dict[str, Any]:
    raise_fd_limit(viewers + 256)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        proc, url = _start_relay(data)
        relay = psutil.Process(proc.pid)
        spawn = multiprocessing.get_context("spawn")
        ours, theirs = spawn.Pipe()
        client = None
        try:
            if viewers:
                point = Point(viewers=viewers, stalled=stalled, seconds=180.0)
                client = spawn.Process(target=_viewers_process, args=(url.replace("http", "ws", 1) + "/ws", point, theirs))
                client.start()
                if _recv_within(ours, 300.0, client) != "ready":
                    raise RuntimeError("viewers failed to connect")
            measure_from = time.time()
            time.sleep(178.0 - (time.time() - measure_from))  # the meeting, in real time
            _wait_for_end(url, data, 60.0)
            rss_mb = relay.memory_info().rss / 2**20
            result: dict[str, Any] = {"viewers": viewers, "stalled": stalled, "relay_rss_mb": round(rss_mb, 1)}
            if client is not None:
                ours.send((measure_from, 0))
                delays = _recv_within(ours, 120.0, client)
                arrival_ms, handled_ms = delays["arrival"] * 1000, delays["delays"] * 1000
                result.update(
                    samples=int(handled_ms.size),
                    arrival_p50_ms=round(float(np.percentile(arrival_ms, 50)), 1),
                    arrival_p99_ms=round(float(np.percentile(arrival_ms, 99)), 1),
                    p50_ms=round(float(np.percentile(handled_ms, 50)), 1),
                    p99_ms=round(float(np.percentile(handled_ms, 99)), 1),
                    healthy_received_min=delays["min_received"],
                )
        finally:
            if client is not None:
                client.join(30)
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        with TranscriptStore(transcript_path(data), readonly=True) as store:
            captions = [{"type": "final", **_record(f)} for f in store.all_finals()]
        streaming = score(load_events(), captions)
        result["final_delay_s"] = streaming["final_delay_s"]
        result["wer"] = streaming["wer"]
        return result


def _record(final) -> dict[str, Any]:
    c = final.caption
    return {"id": c.id, "lang": c.lang, "text": c.text, "start": c.start, "end": c.end, "wall": c.wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--viewers", default="0,1000,5000")
    parser.add_argument("--stalled", type=float, default=0.1, help="stalled share in an extra run at the largest count")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    counts = [int(n) for n in args.viewers.split(",")]
    points = [(n, 0) for n in counts] + ([(counts[-1], int(counts[-1] * args.stalled))] if args.stalled else [])
    results = [run_point(n, s) for n, s in points]
    base = next((r for r in results if r["viewers"] == 0), None)
    for r in results:
        if base and r["viewers"]:
            r["rss_per_viewer_kb"] = round((r["relay_rss_mb"] - base["relay_rss_mb"]) * 1024 / r["viewers"], 1)
    text = json.dumps({"points": results}, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
