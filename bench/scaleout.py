"""Scale-out on Redis Streams: one transcribing relay, a real Redis, edges, thousands of viewers, a reconnect storm.

    python -m bench.scaleout [--viewers 10000] [--edges 2] [--seconds S] [--storm-at 90] [--out FILE]

Each point runs `relay serve meeting.flac --realtime --redis URL --event bench` (the whole product:
Whisper, Apertium, SQLite), a real redis-server (bench.cluster) and `--edges` `relay edge` servers
(no per-address cap); a measuring viewer (bench.probe, reconnecting) on the first edge. Points:

- base: no crowd. The transcriber's final delay at the measuring viewer, each edge's RSS at the
  end, Redis and relay CPU.
- crowd: `--viewers` viewers spread evenly over the edges, one process per edge (bench.clients,
  kernel receive times, browser-like reconnect backoff), connected once the event runs. Delivery
  (each frame's `sent` -> viewer socket), every viewer's finals against the relay's SQLite
  transcript, edge RSS per viewer against the base point, CPU of Redis, edges and relay per audio
  second, the final delay at the measuring viewer against the base point. At `--storm-at` s of
  the meeting every edge is SIGKILLed and started again at once on the same ports: how long until
  every viewer has a hello again, until every viewer holds every final published by then, and the
  commands Redis executed in the storm window against as long a quiet window just before it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from bench.clients import Crowd, crowd_process, raise_fd_limit
from bench.cluster import Cluster, command_delta, commandstats, restart_edges, start_cluster, stop_cluster
from bench.probe import MeasuringViewer
from bench.relay_run import ResourceSampler, cpu_s, rss_mb, run_conditions, write_result
from bench.scaleout_figures import METHOD, base_figures, crowd_point_figures, targets
from bench.scoring import load_events, reference_spans
from bench.transcription import MEETING, MEETING_SECONDS, looped_meeting
from bench.viewers import _recv_within
from relay.store import TranscriptStore, transcript_path

PROBE_RECONNECT_S = 0.5
CONNECT_TIMEOUT_S = 600.0


def run_point(viewers: int, edges: int, source: Path, storm: tuple[float, float] | None) -> dict[str, Any]:
    """One run of `source` with `viewers` viewers over `edges` edges; `storm`: (at meeting second, window s)."""
    raise_fd_limit(viewers + 256)
    out: dict[str, Any] = {"viewers": viewers, "edges": edges}
    with tempfile.TemporaryDirectory() as tmp:
        cluster = start_cluster(Path(tmp), source, edges, max_viewers=viewers + 1000)
        ready_at = time.time()
        probe = MeasuringViewer(cluster.edge_ws_urls[0], reconnect_after_s=PROBE_RECONNECT_S)
        crowds: list[tuple[multiprocessing.process.BaseProcess, Any]] = []
        try:
            probe.start()
            crowds = _start_crowds(cluster, viewers)
            out["measure_from"] = measure_from = time.time()
            sampler = ResourceSampler(cluster.relay.pid)
            sampler.start()
            usage = {"redis_cpu_s": cpu_s(cluster.redis_pid), "edge_cpu_s": [cpu_s(p.pid) for p in cluster.edges],
                     "commands": commandstats(cluster.redis.url)}
            if storm is not None and viewers:
                out["storm"] = _storm(cluster, ready_at + storm[0], storm[1], measure_from)
            if not probe.ended.wait(MEETING_SECONDS + 120.0):
                raise TimeoutError("the relay did not end the source")
            out["usage"] = _usage(cluster, usage, out.get("storm"))
            out["resources"] = sampler.stop()
            out["edge_counters"] = [_edge_counters(port) for port in cluster.ports]
            out["got"] = _collect(crowds, measure_from, _last_seq(probe))
        finally:
            out["probe"] = probe.stop()
            for process, _ in crowds:
                process.join(30)
                if process.is_alive():
                    process.kill()
            stop_cluster(cluster)
        with TranscriptStore(transcript_path(cluster.data), readonly=True) as store:
            out["stored"] = store.all_finals()
    return out


def _start_crowds(cluster: Cluster, viewers: int) -> list[tuple[multiprocessing.process.BaseProcess, Any]]:
    """One crowd process per edge, the viewers spread evenly; returns once every viewer has its hello."""
    spawn = multiprocessing.get_context("spawn")
    edges = len(cluster.ports)
    crowds = []
    for index, url in enumerate(cluster.edge_ws_urls):
        count = viewers // edges + (index < viewers % edges)
        if count:
            ours, theirs = spawn.Pipe()
            process = spawn.Process(target=crowd_process, args=(Crowd(url, count, browser_backoff=True), theirs))
            process.start()
            crowds.append((process, ours))
    for process, conn in crowds:
        if _recv_within(conn, CONNECT_TIMEOUT_S, process) != "ready":
            raise RuntimeError("viewers failed to connect")
    return crowds


def _storm(cluster: Cluster, kill_at: float, window_s: float, measure_from: float) -> dict[str, Any]:
    """Kill and restart every edge at `kill_at` (Unix time); Redis commands in the storm and in a quiet window."""
    kill_at = max(kill_at, measure_from + 5.0)
    quiet_from = max(measure_from, kill_at - window_s)
    _sleep_until(quiet_from)
    quiet_start = commandstats(cluster.redis.url)
    _sleep_until(kill_at)
    before = commandstats(cluster.redis.url)
    edges_before = [{"rss_mb": rss_mb(p.pid), "cpu_s": cpu_s(p.pid)} for p in cluster.edges]
    killed_at = time.time()
    serving_s = restart_edges(cluster)
    _sleep_until(killed_at + window_s)
    return {
        "killed_at": killed_at,
        "window_s": window_s,
        "quiet_window_s": round(kill_at - quiet_from, 1),
        "edges_serving_again_s": round(serving_s, 2),
        "commands_quiet": command_delta(quiet_start, before),
        "commands_storm": command_delta(before, commandstats(cluster.redis.url)),
        "edges_before_kill": edges_before,
    }


def _usage(cluster: Cluster, start: dict[str, Any], storm: dict[str, Any] | None) -> dict[str, Any]:
    """CPU of Redis and the edges since `start`, the edges' RSS now, Redis's commands meanwhile."""
    edge_cpu = [cpu_s(p.pid) for p in cluster.edges]  # restarted edges: since their start
    if storm is None:
        edge_cpu = [now - then for now, then in zip(edge_cpu, start["edge_cpu_s"])]
    else:
        edge_cpu = [now + e["cpu_s"] - then for now, e, then in zip(edge_cpu, storm["edges_before_kill"],
                                                                     start["edge_cpu_s"])]
    return {
        "redis_cpu_s": round(cpu_s(cluster.redis_pid) - start["redis_cpu_s"], 2),
        "edge_cpu_s": [round(s, 2) for s in edge_cpu],
        "edge_rss_mb_at_end": [rss_mb(p.pid) for p in cluster.edges],
        "edges_alive": [p.poll() is None for p in cluster.edges],
        "commands": command_delta(start["commands"], commandstats(cluster.redis.url)),
    }


def _edge_counters(port: int) -> dict[str, float]:
    """The counters an edge's /metrics gives (viewers, drops, refusals, far resumes, Redis failures)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {line.split()[0].removeprefix("relay_edge_"): float(line.split()[1])
            for line in text.splitlines() if line.startswith("relay_edge_") and " " in line}


def _last_seq(probe: MeasuringViewer) -> int:
    return max((a.message["seq"] for a in probe.result.arrivals if a.message["type"] in ("final", "track")), default=0)


def _collect(crowds: list[tuple[multiprocessing.process.BaseProcess, Any]], measure_from: float,
             last_seq: int) -> dict[str, Any] | None:
    """What every viewer got, the crowds' reports merged."""
    if not crowds:
        return None
    for _, conn in crowds:
        conn.send((measure_from, 0, last_seq))
    gots = [_recv_within(conn, 300.0, process) for process, conn in crowds]
    merged: dict[str, Any] = {key: np.concatenate([g[key] for g in gots]) for key in ("sent", "arrival", "delays")}
    for key in ("finals", "duplicates", "connections", "closes", "hellos"):
        merged[key] = [item for got in gots for item in got[key]]
    merged["min_received"] = min(got["min_received"] for got in gots)
    merged["bytes_read_median"] = float(np.median([got["bytes_read_median"] for got in gots]))
    return merged


def _sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=10_000, help="viewers in the crowd point (0: base point only)")
    parser.add_argument("--edges", type=int, default=2, help="relay edge servers (default 2: one per core)")
    parser.add_argument("--seconds", type=float, default=None, help="only the meeting's first SECONDS (smoke test)")
    parser.add_argument("--storm-at", type=float, default=90.0, help="meeting second of the edges' kill (0: no storm)")
    parser.add_argument("--storm-window", type=float, default=20.0, help="seconds after the kill counted as the storm")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    length = args.seconds or MEETING_SECONDS
    if args.storm_at and args.storm_at + args.storm_window > length:
        parser.error(f"--storm-at + --storm-window must end within the meeting's {length:.0f} s")
    from faster_whisper.audio import decode_audio

    events = [e for e in load_events() if args.seconds is None or e.end <= args.seconds]
    spans = reference_spans(events, decode_audio(str(MEETING)))
    storm = (args.storm_at, args.storm_window) if args.storm_at else None
    conditions = run_conditions()
    with tempfile.TemporaryDirectory() as tmp:
        source = MEETING if args.seconds is None else looped_meeting(1, Path(tmp), args.seconds)
        base = run_point(0, args.edges, source, None)
        crowd = run_point(args.viewers, args.edges, source, storm) if args.viewers else None
    base_out = base_figures(base, events, spans, crowd)
    crowd_out = crowd_point_figures(crowd, base, events, spans) if crowd else None
    result = {**conditions, "seconds_of_meeting": args.seconds, "edges": args.edges, "viewers": args.viewers,
              "targets": targets(base_out, crowd_out), "base": base_out, "crowd": crowd_out, "method": METHOD}
    write_result(result, args.out)


if __name__ == "__main__":
    main()
