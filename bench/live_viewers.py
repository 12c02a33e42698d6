"""Viewers on a relay that is really transcribing: what every viewer got, and when.

    python -m bench.live_viewers [--viewers 0,1000,5000] [--slow 0.1] [--slow-read-bps 100] [--out FILE]

Each point runs `relay serve meeting.flac --realtime` (Whisper, Apertium, SQLite, the viewer
server: the whole product), one measuring viewer on its own thread (bench.probe) and, in a
separate process, N viewers (bench.clients), a share of them slow readers in an extra point
at the largest count. Per point:

- finals: every viewer's finals are compared with the relay's durable transcript (seq and the
  exact JSON bytes, by CRC-32); a viewer that kept up must hold all of them, a slow one every
  final up to its latest (dropped and resumed with `since`, it lost none), and how each slow
  viewer's connections ended;
- the final caption's delay after the end of its utterance's speech (located in the audio),
  at the sockets of every viewer that kept up (kernel receive time; the relay clock's zero from
  the run's `sent - wall`, see bench.transcription.clock_zero; utterances whose final was
  published once every viewer was connected), at the measuring viewer's socket (connected
  before the source starts: every utterance), and as the relay's `wall`;
- publish → socket and publish → handled delay of every caption frame (from each frame's `sent`);
- relay process RSS per viewer against the point without viewers, and peak RSS/PSS of the
  relay with its Apertium processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.clients import Crowd, completeness, crowd_process, raise_fd_limit
from bench.probe import MeasuringViewer
from bench.relay_run import ResourceSampler, histogram_ms, metric, run_conditions, start_relay, stop_relay, write_result
from bench.scoring import Event, assign_finals, load_events, reference_spans
from bench.transcription import MEETING, MEETING_SECONDS, clock_zero, looped_meeting, score, viewer_captions
from bench.viewers import _recv_within
from relay.store import TranscriptStore, transcript_path


def run_point(
    viewers: int, slow: int, slow_read_bps: int, events: list[Event], spans: dict, source: Path = MEETING
) -> dict[str, Any]:
    """One run of the meeting with `viewers` viewers, `slow` of them slow readers."""
    crowd = Crowd("", viewers, slow, slow_read_bps)
    run = _run(crowd, source)
    stored = run.pop("stored")
    captions = viewer_captions(run.pop("probe").arrivals)
    got, measure_from = run.pop("got"), run.pop("measure_from")
    point: dict[str, Any] = {
        "viewers": viewers, "slow": slow, "slow_read_bps": slow_read_bps if slow else None, **run,
        "measuring_viewer": {
            "finals_as_in_transcript": {c["seq"]: c["text"] for c in captions if c["type"] == "final"}
            == {f.seq: f.caption.text for f in stored if f.track is None},
            **score(events, spans, captions),
        },
    }
    if got is not None:
        expected = {f.seq: zlib.crc32(f.frame_json.encode()) for f in stored}
        published = {f.seq: f.published_at for f in stored}
        # finals published once every viewer was connected (earlier ones reached them as a replay)
        ends = {seq: end for seq, end in last_final_per_utterance(events, spans, stored).items()
                if published[seq] >= measure_from}
        point.update(crowd_figures(got, expected, slow, ends, clock_zero(captions), run["resources"]["seconds"]))
    return point


def _run(crowd: Crowd, source: Path) -> dict[str, Any]:
    """Run the relay with the measuring viewer and `crowd`; return what each observed."""
    raise_fd_limit(crowd.viewers + 256)
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        # every benchmark viewer comes from 127.0.0.1: lift the per-address cap (200 by default)
        proc, url = start_relay(data, source, ["--max-viewers-per-address", "0"])
        crowd = dataclasses.replace(crowd, ws_url=url.replace("http", "ws", 1) + "/ws")
        sampler, probe, client, out = ResourceSampler(proc.pid), MeasuringViewer(crowd.ws_url), None, {"got": None}
        try:
            probe.start()
            if crowd.viewers:
                client = spawn.Process(target=crowd_process, args=(crowd, theirs))
                client.start()
                if _recv_within(ours, 300.0, client) != "ready":
                    raise RuntimeError("viewers failed to connect")
            out["measure_from"] = measure_from = time.time()
            sampler.start()
            if not probe.ended.wait(MEETING_SECONDS + 120.0):
                raise TimeoutError("the relay did not end the session")
            out["relay_rss_mb"] = round(psutil.Process(proc.pid).memory_info().rss / 2**20, 1)
            # close 4001 only: a heartbeat (ping) timeout is not counted here
            out["dropped_as_too_slow_by_relay"] = metric(url, data, "relay_viewers_dropped_total")
            out["mt_ms"] = histogram_ms(url, data, "relay_translation_seconds")
            out["resources"] = sampler.stop()
            if client is not None:
                ours.send((measure_from, 0))
                out["got"] = _recv_within(ours, 120.0, client)
        finally:
            out["probe"] = probe.stop()
            if client is not None:
                client.join(30)
                if client.is_alive():
                    client.kill()
            stop_relay(proc)
        with TranscriptStore(transcript_path(data), readonly=True) as store:
            out["stored"] = store.all_finals()
    return out


def crowd_figures(
    got: dict, expected: dict[int, int], slow: int, ends: dict[int, float], zero: float, duration_s: float
) -> dict[str, Any]:
    """Completeness, delivery delays and speech-end → socket delays (`ends`: seq -> end of speech) of the crowd."""
    arrival_ms, handled_ms = got["arrival"] * 1000, got["delays"] * 1000
    after_speech = np.array([
        held[seq][1] - zero - end for held in got["finals"][slow:] for seq, end in ends.items() if seq in held
    ])
    return {
        "finals": completeness(got, expected, slow),
        "final_delay_s_at_every_socket": {
            "p50": _pct(after_speech, 50, 2), "p95": _pct(after_speech, 95, 2), "p99": _pct(after_speech, 99, 2),
            "samples": int(after_speech.size), "utterances": len(ends),
        },
        "frames": int(handled_ms.size),
        "publish_to_socket_ms": {"p50": _pct(arrival_ms, 50), "p99": _pct(arrival_ms, 99)},
        "publish_to_handled_ms": {"p50": _pct(handled_ms, 50), "p99": _pct(handled_ms, 99)},
        "kept_up_received_min": got["min_received"],
        "stream_bytes_per_s": round(got["bytes_read_median"] / duration_s),  # a viewer that kept up, median
    }


def last_final_per_utterance(events: list[Event], spans: dict, stored: list) -> dict[int, float]:
    """seq of the final that completes each utterance -> where that utterance's speech ends."""
    finals = [{"seq": f.seq, "start": f.caption.start, "end": f.caption.end, "text": f.caption.text}
              for f in stored if f.caption.text and f.track is None]
    return {max(c["seq"] for c in got): spans[index][1] for index, got in assign_finals(events, finals).items() if got}


def _pct(values: np.ndarray, q: float, digits: int = 1) -> float | None:
    return round(float(np.percentile(values, q)), digits) if values.size else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="0,1000,5000")
    parser.add_argument("--slow", type=float, default=0.1, help="slow share in an extra run at the largest count")
    parser.add_argument("--slow-read-bps", type=int, default=100, help="bytes a second a slow viewer reads")
    parser.add_argument("--seconds", type=float, default=None, help="only the meeting's first SECONDS (smoke test)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from faster_whisper.audio import decode_audio

    events = [e for e in load_events() if args.seconds is None or e.end <= args.seconds]
    spans = reference_spans(events, decode_audio(str(MEETING)))
    counts = [int(n) for n in args.viewers.split(",")]
    points = [(n, 0) for n in counts] + ([(counts[-1], int(counts[-1] * args.slow))] if args.slow else [])
    conditions = run_conditions()
    with tempfile.TemporaryDirectory() as tmp:
        source = MEETING if args.seconds is None else looped_meeting(1, Path(tmp), args.seconds)
        results = [run_point(n, s, args.slow_read_bps, events, spans, source) for n, s in points]
    base = next((r for r in results if r["viewers"] == 0), None)
    for r in results:
        if base and r["viewers"]:
            r["rss_per_viewer_kb"] = round((r["relay_rss_mb"] - base["relay_rss_mb"]) * 1024 / r["viewers"], 1)
    write_result({**conditions, "seconds_of_meeting": args.seconds, "points": results}, args.out)


if __name__ == "__main__":
    main()
