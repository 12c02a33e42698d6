"""bench.scaleout's figures from what its runs observed, the issue's targets, and how each figure is taken."""

from __future__ import annotations

import zlib
from collections import Counter
from typing import Any

import numpy as np

from bench.live_viewers import crowd_figures, last_final_per_utterance
from bench.scoring import Event
from bench.transcription import clock_zero, score, viewer_captions

RELAY_WRITES = frozenset({"xadd", "hset"})  # the publishing relay's commands; the rest are the edges'
IN_FLIGHT_S = 2.0  # captions sent this long before the kill may be lost with the edge: left out with the storm
STORM_EXCESS_PER_EDGE = 50  # "proportional to edges": the storm's extra edge commands at most this many per edge

METHOD = {
    "final_delay_s": "measuring viewer (bench.probe, on the first edge): kernel receive time (SO_TIMESTAMPING) of "
                     "an utterance's last final minus the relay clock's zero (min sent - wall) minus the end of its "
                     "speech located in the audio (bench.transcription.score); captions sent before its first hello "
                     "(a backlog replay) left out; in the crowd point, and for the comparison in the base point too, "
                     f"captions sent from {IN_FLIGHT_S:.0f} s before the kill to the storm window's end left out",
    "publish_to_socket_ms": "every crowd viewer, every frame with a `sent` sent after all viewers connected and "
                            f"outside the storm span ({IN_FLIGHT_S:.0f} s before the kill to the storm window's end): "
                            "kernel receive time (SO_TIMESTAMPNS) - sent; the same inside the span apart",
    "finals": "every viewer's finals (seq and CRC-32 of the frame's JSON) against the relay's SQLite transcript, "
              "the whole run (storm included)",
    "edge_rss_kb_per_viewer": "psutil RSS of each edge (before the kill, and at the end: restarted edges) minus the "
                              "same edge's RSS at the end of the base point, divided by that edge's crowd viewers",
    "cpu_per_audio_s": "psutil user+system CPU seconds of redis-server, the edges (killed ones up to the kill plus "
                       "their restarts), the relay process and its Apertium children, from all viewers connected to "
                       "the source's end, divided by those wall seconds (the meeting plays at real time)",
    "storm": "SIGKILL of every edge, all started again at once on the same ports; viewers reconnect with "
             "since/session after the browser's jittered backoff (web/connection.js). hello again: each viewer's "
             "first hello after the kill (kernel receive time). holds every final: the last arrival, over all "
             "viewers, of the finals published (SQLite published_at) up to the moment the last viewer had its hello",
    "redis_commands": "INFO commandstats `calls` deltas (INFO itself left out): the storm window from the kill, "
                      "against a quiet window just before it scaled to the same length; edge commands are all but "
                      "the relay's xadd/hset; the storm's extra commands sum the commands that rose (the XREADs "
                      "edges miss while down are not counted as a saving); the benchmark's own INFO connection "
                      "adds one HELLO to each window",
}


def base_figures(
    base: dict[str, Any], events: list[Event], spans: dict, crowd: dict[str, Any] | None
) -> dict[str, Any]:
    """The point without a crowd: final delay (also over the crowd point's storm-free captions), RSS, CPU."""
    out = {"measuring_viewer": _probe_figures(base, events, spans, None), **_usage_figures(base)}
    window = _storm_window(crowd)
    if crowd is not None and window is not None:
        zero = clock_zero(viewer_captions(crowd["probe"].arrivals))
        stream = (window[0] - zero, window[1] - zero)
        out["final_delay_s_outside_the_storm_span"] = _probe_figures(base, events, spans, stream)["final_delay_s"]
    return out


def crowd_point_figures(
    crowd: dict[str, Any], base: dict[str, Any], events: list[Event], spans: dict
) -> dict[str, Any]:
    """The crowd point: delivery, completeness, final delays, RSS per viewer, CPU, the storm."""
    stored, got, storm = crowd["stored"], crowd["got"], crowd.get("storm")
    expected = {f.seq: zlib.crc32(f.frame_json.encode()) for f in stored}
    published = {f.seq: f.published_at for f in stored}
    window = _storm_window(crowd)
    zero = clock_zero(viewer_captions(crowd["probe"].arrivals))
    stream = None if window is None else (window[0] - zero, window[1] - zero)
    in_window = _within(got["sent"], window)
    steady = {**got, "arrival": got["arrival"][~in_window], "delays": got["delays"][~in_window]}
    ends = {seq: end for seq, end in last_final_per_utterance(events, spans, stored).items()
            if published[seq] >= crowd["measure_from"] and not _inside(published[seq], window)}
    out: dict[str, Any] = {
        "measuring_viewer": _probe_figures(crowd, events, spans, stream),
        **crowd_figures(steady, expected, 0, ends, zero, crowd["resources"]["seconds"]),
        "edge_rss": _rss_per_viewer(crowd, base),
        **_usage_figures(crowd),
    }
    if storm is not None:
        storm_ms = got["arrival"][in_window] * 1000
        out["publish_to_socket_ms_in_storm_window"] = {"p50": _pct(storm_ms, 50), "p99": _pct(storm_ms, 99),
                                                       "max": _pct(storm_ms, 100), "frames": int(storm_ms.size)}
        out["storm"] = _storm_figures(storm, got, published, zero, crowd["viewers"], crowd["edges"])
    return out


def _probe_figures(run: dict[str, Any], events: list[Event], spans: dict,
                   excluded: tuple[float, float] | None) -> dict[str, Any]:
    """Final delay at the measuring viewer, captions in the `excluded` stream seconds left out."""
    arrivals = run["probe"].arrivals
    captions = viewer_captions(arrivals)
    zero = clock_zero(captions)
    hello = min(a.kernel_s for a in arrivals if a.message["type"] == "hello")
    live = [c for c in captions if c["sent"] >= hello]
    kept = [c for c in live if not _inside(c["sent"] - zero, excluded)]
    scored = score(events, spans, kept)
    return {
        "final_delay_s": scored["final_delay_s"]["viewer_socket"],
        "final_delay_s_relay_wall": scored["final_delay_s"]["wall"],
        "wer": score(events, spans, live)["wer"],  # every live caption: whether the relay transcribed as usual
        "captions_left_out": len(captions) - len(kept),
        "finals_as_in_transcript": {c["seq"]: c["text"] for c in captions if c["type"] == "final"}
        == {f.seq: f.caption.text for f in run["stored"] if f.track is None},
        "reconnections": run["probe"].reconnections,
    }


def _usage_figures(run: dict[str, Any]) -> dict[str, Any]:
    usage, resources = run["usage"], run["resources"]
    seconds = resources["seconds"]
    commands = usage["commands"]
    return {
        "measured_s": seconds,
        "cpu_per_audio_s": {"redis": round(usage["redis_cpu_s"] / seconds, 4),
                            "edges": round(sum(usage["edge_cpu_s"]) / seconds, 4),
                            "relay_process": round(resources["cpu_s"]["relay_process"] / seconds, 3),
                            "apertium": round(resources["cpu_s"]["apertium"] / seconds, 3)},
        "edge_cpu_s": usage["edge_cpu_s"],
        "edge_rss_mb_at_end": usage["edge_rss_mb_at_end"],
        "edges_alive_at_end": usage["edges_alive"],
        "relay_peak_rss_mb": resources["peak_rss_mb"],
        "redis_commands_per_audio_s": round(sum(commands.values()) / seconds, 1),
        "redis_commands": commands,
        "edge_counters": run["edge_counters"],
    }


def _rss_per_viewer(crowd: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    viewers, edges = crowd["viewers"], crowd["edges"]
    counts = [viewers // edges + (i < viewers % edges) for i in range(edges)]
    base_mb = base["usage"]["edge_rss_mb_at_end"]
    phases = {"at_end": crowd["usage"]["edge_rss_mb_at_end"]}
    if crowd.get("storm"):
        phases["before_storm"] = [edge["rss_mb"] for edge in crowd["storm"]["edges_before_kill"]]
    per_viewer = {phase: [round((mb - b) * 1024 / n, 1) for mb, b, n in zip(rss, base_mb, counts) if n]
                  for phase, rss in phases.items()}
    return {"base_edge_rss_mb": base_mb, "edge_rss_mb": phases, "viewers_per_edge": counts,
            "kb_per_viewer": per_viewer, "worst_kb_per_viewer": max((v for vs in per_viewer.values() for v in vs),
                                                                  default=None)}


def _storm_figures(storm: dict[str, Any], got: dict[str, Any], published: dict[int, float], zero: float,
                   viewers: int, edges: int) -> dict[str, Any]:
    killed_at = storm["killed_at"]
    again = [next(((t, resumed) for t, resumed in hellos if t >= killed_at), None) for hellos in got["hellos"]]
    back = np.array([t - killed_at for t, _ in filter(None, again)])
    everyone_back = back.size == len(again) and back.size > 0
    held_s, up_to = _every_final_held(got["finals"], published, killed_at, killed_at + back.max()) \
        if everyone_back else (None, 0)
    lost = [seq for seq, at in published.items() if at >= killed_at - IN_FLIGHT_S]
    ends: Counter[str] = Counter()
    for closes in got["closes"]:
        ends.update(closes)
    return {
        "killed_at_meeting_s": round(killed_at - zero, 1),
        "edges_serving_again_s": storm["edges_serving_again_s"],
        "every_viewer_hello_again_s": round(float(back.max()), 2) if everyone_back else None,
        "every_viewer_hello_again_after_edges_served_s":  # the rest is the backoff's wait
            round(float(back.max()) - storm["edges_serving_again_s"], 2) if everyone_back else None,
        "hello_again_s": {"p50": _pct(back, 50, 2), "p95": _pct(back, 95, 2), "max": _pct(back, 100, 2)},
        "viewers_without_hello_again": len(again) - int(back.size),
        "hellos_again_not_resumed": sum(1 for a in again if a is not None and not a[1]),
        "every_viewer_holds_every_final_s": held_s,
        "finals_published_until_everyone_back": up_to,
        "finals_missing_from_the_storm_on": sum(len(set(lost) - set(held)) for held in got["finals"]),
        "duplicates": int(sum(got["duplicates"])),
        "connection_ends": dict(ends),  # "lost": the edge died; "refused": an attempt before it served again
        "redis_commands": _storm_commands(storm, edges, viewers),
    }


def _every_final_held(finals: list[dict[int, tuple[int, float]]], published: dict[int, float], killed_at: float,
                      until: float) -> tuple[float | None, int]:
    """Seconds from the kill until every viewer held every final published up to `until` (None: some never)."""
    up_to = [seq for seq, at in published.items() if at <= until]
    latest, missing = killed_at, 0
    for held in finals:
        for seq in up_to:
            if seq in held:
                latest = max(latest, held[seq][1])
            else:
                missing += 1
    return (None if missing else round(latest - killed_at, 2)), len(up_to)


def _storm_commands(storm: dict[str, Any], edges: int, viewers: int) -> dict[str, Any]:
    busy, quiet = storm["commands_storm"], storm["commands_quiet"]
    scale = storm["window_s"] / storm["quiet_window_s"] if storm["quiet_window_s"] else 0.0
    names = sorted((set(busy) | set(quiet)) - RELAY_WRITES)
    excess = {name: round(busy.get(name, 0) - quiet.get(name, 0) * scale) for name in names}
    total = sum(max(0, n) for n in excess.values())  # fewer XREADs while the edges are down is no saving to count
    return {
        "storm_window_s": storm["window_s"], "quiet_window_s": storm["quiet_window_s"],
        "storm_window": busy, "quiet_window": quiet,
        "edge_commands_excess": dict(sorted(excess.items(), key=lambda kv: -kv[1])),
        "edge_commands_excess_total": total,
        "per_edge": round(total / edges, 1), "per_viewer": round(total / viewers, 4) if viewers else None,
    }


def targets(base: dict[str, Any], crowd: dict[str, Any] | None) -> dict[str, Any]:
    """The issue's targets, each reached or not (never asserted)."""
    if crowd is None:
        return {}
    kept = crowd["finals"]["kept_up"]
    p99 = crowd["publish_to_socket_ms"]["p99"]
    base_p95 = base.get("final_delay_s_outside_the_storm_span", base["measuring_viewer"]["final_delay_s"])["p95"]
    p95 = crowd["measuring_viewer"]["final_delay_s"]["p95"]
    rss = crowd["edge_rss"]["worst_kb_per_viewer"]
    out: dict[str, Any] = {
        "delivery_p99_at_most_250_ms_nothing_missing": {
            "p99_ms": p99, "missing_finals": kept["missing_finals"], "differing": kept["differing_from_published"],
            "reached": p99 is not None and p99 <= 250
            and kept["missing_finals"] == kept["differing_from_published"] == 0},
        "edge_rss_at_most_25_kb_per_viewer": {"worst_kb": rss, "reached": rss is not None and rss <= 25},
        "final_delay_p95_at_most_1_1_x_base": {
            "base_p95_s": base_p95, "p95_s": p95, "ratio": round(p95 / base_p95, 3) if p95 and base_p95 else None,
            "reached": bool(p95 and base_p95 and p95 <= 1.1 * base_p95)},
    }
    storm = crowd.get("storm")
    if storm is not None:
        resumed, commands = storm["every_viewer_hello_again_s"], storm["redis_commands"]
        out["storm_resumed_within_15_s_redis_commands_proportional_to_edges"] = {
            "every_viewer_hello_again_s": resumed, "every_final_held_s": storm["every_viewer_holds_every_final_s"],
            "edge_commands_excess_per_edge": commands["per_edge"], "bound_per_edge": STORM_EXCESS_PER_EDGE,
            "reached": resumed is not None and resumed <= 15 and storm["hellos_again_not_resumed"] == 0
            and commands["per_edge"] <= STORM_EXCESS_PER_EDGE and storm["duplicates"] == 0
            and storm["finals_missing_from_the_storm_on"] == 0}
    return out


def _storm_window(run: dict[str, Any] | None) -> tuple[float, float] | None:
    """Unix times of the captions left out with the storm: from IN_FLIGHT_S before the kill to the window's end."""
    storm = None if run is None else run.get("storm")
    if storm is None:
        return None
    return storm["killed_at"] - IN_FLIGHT_S, storm["killed_at"] + storm["window_s"]


def _inside(value: float, window: tuple[float, float] | None) -> bool:
    return window is not None and window[0] <= value < window[1]


def _within(values: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    if window is None:
        return np.zeros(values.shape, dtype=bool)
    return (values >= window[0]) & (values < window[1])


def _pct(values: np.ndarray, q: float, digits: int = 1) -> float | None:
    return round(float(np.percentile(values, q)), digits) if values.size else None
