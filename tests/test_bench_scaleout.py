"""bench.scaleout's storm figures and bench.cluster's Redis command counts (a real redis-server)."""

from __future__ import annotations

import redis

from bench.cluster import command_delta, commandstats
from bench.scaleout_figures import _every_final_held, _storm_commands
from tests.support.redis_server import RedisServer


def test_every_final_is_held_when_the_last_viewer_got_the_last_one_published_by_then() -> None:
    published = {1: 100.0, 2: 105.0, 3: 111.0, 4: 130.0}  # seq 4: after everyone was back, not counted
    finals = [{1: (0, 100.1), 2: (0, 105.1), 3: (0, 114.0)}, {1: (0, 100.1), 2: (0, 113.0), 3: (0, 113.0)}]
    assert _every_final_held(finals, published, killed_at=110.0, until=112.0) == (4.0, 3)
    finals[1].pop(2)
    assert _every_final_held(finals, published, killed_at=110.0, until=112.0) == (None, 3)


def test_storm_commands_are_the_edges_excess_over_a_quiet_window_of_the_same_length() -> None:
    storm = {"window_s": 20.0, "quiet_window_s": 10.0,
             "commands_storm": {"xread": 50, "xadd": 400, "hgetall": 2, "xrevrange": 6, "xrange": 1},
             "commands_quiet": {"xread": 20, "xadd": 200, "hset": 1, "xrange": 4}}
    figures = _storm_commands(storm, edges=2, viewers=1000)
    assert figures["edge_commands_excess"] == {"xread": 10, "xrevrange": 6, "hgetall": 2, "xrange": -7}
    assert figures["edge_commands_excess_total"] == 18  # a command that fell is no saving
    assert figures["per_edge"] == 9.0
    assert figures["per_viewer"] == 0.018


def test_commandstats_counts_what_redis_executed(tmp_path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        before = commandstats(server.url)
        client = redis.Redis.from_url(server.url)
        for n in range(3):
            client.xadd("s", {"m": str(n)})
        client.xrange("s")
        client.close()
        delta = command_delta(before, commandstats(server.url))
    finally:
        server.stop()
    assert delta["xadd"] == 3 and delta["xrange"] == 1
    assert "info" not in delta
