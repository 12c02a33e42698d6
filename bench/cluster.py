"""A transcribing relay publishing to a real redis-server, and `relay edge` servers on fixed ports.

`start_cluster` starts redis-server (tests.support.redis_server: Debian's, append-only file,
fsync every second), the edges first (they wait for the event to appear on Redis, so they serve
within a second of the relay opening its source), then `relay serve SOURCE --realtime --redis`.
`restart_edges` is the reconnect storm's cause: every edge SIGKILLed, then all started again at
once on the same ports. `commandstats` reads Redis's own count of commands executed.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.relay_run import serving_url, start_edge, start_relay, stop_relay
from tests.support.redis_server import RedisServer, free_port

EVENT = "bench"


@dataclass(slots=True)
class Cluster:
    """The running processes of one benchmark point."""

    redis: RedisServer
    relay: subprocess.Popen
    relay_url: str
    data: Path
    ports: list[int]
    edge_options: list[str]
    edges: list[subprocess.Popen] = field(default_factory=list)

    @property
    def edge_ws_urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{port}/ws" for port in self.ports]

    @property
    def redis_pid(self) -> int:
        assert self.redis.proc is not None
        return self.redis.proc.pid


def start_cluster(tmp: Path, source: Path, edges: int, max_viewers: int) -> Cluster:
    """Redis, `edges` edges (no per-address cap, `max_viewers` each) and the relay on `source`, all serving."""
    server = RedisServer(tmp / "redis").start()
    ports = [free_port() for _ in range(edges)]
    options = ["--max-viewers", str(max_viewers), "--max-viewers-per-address", "0"]  # every viewer is 127.0.0.1
    procs = [start_edge(server.url, EVENT, port, options) for port in ports]
    try:
        relay, url = start_relay(tmp / "data", source, ["--redis", server.url, "--event", EVENT])
    except BaseException:
        _kill(procs)
        server.stop()
        raise
    cluster = Cluster(server, relay, url, tmp / "data", ports, options, procs)
    try:
        for proc in procs:
            serving_url(proc)
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def restart_edges(cluster: Cluster) -> float:
    """SIGKILL every edge, start them all again at once on the same ports; seconds until all serve again."""
    killed_at = time.time()
    _kill(cluster.edges)
    cluster.edges = [start_edge(cluster.redis.url, EVENT, port, cluster.edge_options) for port in cluster.ports]
    for proc in cluster.edges:
        serving_url(proc)
    return time.time() - killed_at


def stop_cluster(cluster: Cluster) -> None:
    """Stop the edges, the relay (gracefully) and Redis."""
    for proc in cluster.edges:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in cluster.edges:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    stop_relay(cluster.relay)
    cluster.redis.stop()


def _kill(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        proc.wait(10)


def commandstats(url: str) -> dict[str, int]:
    """Commands Redis executed so far, by name (INFO commandstats `calls`; INFO itself left out)."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    calls = {name.removeprefix("cmdstat_"): int(values["calls"]) for name, values in stats.items()}
    calls.pop("info", None)
    return calls


def command_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands executed between two `commandstats` readings, busiest first (unchanged ones left out)."""
    delta = {name: count - before.get(name, 0) for name, count in after.items()}
    return dict(sorted(((k, v) for k, v in delta.items() if v), key=lambda kv: -kv[1]))
