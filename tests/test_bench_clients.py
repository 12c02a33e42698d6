"""bench.clients: the benchmark's viewers, checked against a real caption server."""

from __future__ import annotations

import asyncio

from bench.clients import BenchViewer, Crowd, completeness, connect_crowd
from relay.hub import CaptionHub
from relay.messages import Caption, SourceState
from relay.server import ServerSettings, create_app, serve


def _got(finals: list[dict[int, tuple[int, float]]], connections: list[int] | None = None) -> dict:
    n = len(finals)
    return {"finals": finals, "closes": [{} for _ in finals], "duplicates": [0] * n,
            "connections": connections or [1] * n}


def test_a_viewer_that_kept_up_is_complete_only_with_every_final_byte_for_byte() -> None:
    expected = {1: 11, 2: 22, 3: 33}
    got = _got([{1: (11, 0.0), 2: (22, 0.0), 3: (33, 0.0)}, {1: (11, 0.0), 3: (33, 0.0)},
                {1: (11, 0.0), 2: (99, 0.0), 3: (33, 0.0)}])
    report = completeness(got, expected, slow=0)["kept_up"]
    assert report["complete"] == 1
    assert report["missing_finals"] == 1
    assert report["differing_from_published"] == 1


def test_a_slow_viewer_behind_is_fine_but_a_gap_is_not() -> None:
    expected = {1: None, 2: None, 3: None, 4: None}
    got = _got([dict.fromkeys((1, 2), (0, 0.0)), dict.fromkeys((1, 3), (0, 0.0)), dict.fromkeys((1, 2, 3, 4), (0, 0.0))])
    report = completeness(got, expected, slow=2)
    assert report["slow"]["without_gap"] == 1
    assert report["slow"]["finals_behind_at_end"]["max"] == 2
    assert report["kept_up"]["complete"] == 1


async def test_a_slow_reader_is_closed_resumes_with_since_and_ends_with_every_final() -> None:
    hub = CaptionHub()
    hub.source_state(SourceState.CONNECTED)
    settings = ServerSettings(heartbeat_s=1.0, close_timeout_s=1.0)  # a quick heartbeat: the test takes seconds
    async with serve(create_app(hub, settings=settings), "127.0.0.1", 0) as url:
        crowd = Crowd(url.replace("http", "ws", 1) + "/ws", viewers=2, slow=1, slow_read_bps=3000)
        slow, healthy = await asyncio.wait_for(connect_crowd(crowd), 30)
        for n in range(1, 61):  # published while the slow reader falls behind and is closed
            hub.publish(Caption("final", f"u{n}", "en", f"{n} " + "word " * 100, n, n + 1.0, n + 1.5))
            await asyncio.sleep(0.1)
        async with asyncio.timeout(120):
            while len(slow.finals) < 60 or len(healthy.finals) < 60:
                await asyncio.sleep(0.2)
        for viewer in (slow, healthy):
            viewer.stopping = True
            viewer.close()
    assert sorted(slow.finals) == sorted(healthy.finals) == list(range(1, 61))
    assert slow.connections >= 2 and sum(slow.closes.values()) >= 1
    assert slow.duplicates == 0 and healthy.connections == 1


def test_browser_backoff_waits_as_the_browser_does_and_a_hello_resets_it() -> None:
    loop = asyncio.new_event_loop()
    try:
        viewer = BenchViewer(("127.0.0.1", 1), "ws://127.0.0.1:1/ws", None, loop.create_future(), browser_backoff=True)
    finally:
        loop.close()
    delays = [viewer._reconnect_delay() for _ in range(4)]
    for delay, ceiling in zip(delays, (0.5, 1.0, 2.0, 4.0)):
        assert ceiling / 2 <= delay <= ceiling
    viewer._on_text(b'{"type":"hello","session":"s1","resumed":true}', 12.5, 12.6)
    assert viewer.hellos == [(12.5, True)] and viewer.session == "s1"
    assert viewer._reconnect_delay() <= 0.5


async def test_a_crowd_reconnects_to_a_restarted_server_and_resumes_with_every_final_once() -> None:
    hub = CaptionHub()
    hub.source_state(SourceState.CONNECTED)
    app_settings = ServerSettings(heartbeat_s=1.0, close_timeout_s=1.0)

    def publish(n: int) -> None:
        hub.publish(Caption("final", f"u{n}", "en", f"caption {n}", n, n + 1.0, n + 1.5))

    async with serve(create_app(hub, settings=app_settings), "127.0.0.1", 0, shutdown_timeout_s=1.0) as url:
        crowd = Crowd(url.replace("http", "ws", 1) + "/ws", viewers=20, browser_backoff=True)
        viewers = await asyncio.wait_for(connect_crowd(crowd), 30)
        for n in range(1, 6):
            publish(n)
    for n in range(6, 11):  # while the server is away: the viewers' attempts are refused
        publish(n)
        await asyncio.sleep(0.2)
    port = int(url.rsplit(":", 1)[1])
    async with serve(create_app(hub, settings=app_settings), "127.0.0.1", port, shutdown_timeout_s=1.0):
        async with asyncio.timeout(60):
            while any(len(v.finals) < 10 for v in viewers):
                await asyncio.sleep(0.1)
        for viewer in viewers:
            viewer.stopping = True
            viewer.close()
    for viewer in viewers:
        assert sorted(viewer.finals) == list(range(1, 11))
        assert viewer.duplicates == 0
        assert [resumed for _, resumed in viewer.hellos] == [False, True]
        assert viewer.connections >= 2


async def _until(condition, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


async def test_a_viewer_answers_the_servers_pings_stays_connected_and_records_the_close_code() -> None:
    hub = CaptionHub()
    hub.source_state(SourceState.CONNECTED)
    settings = ServerSettings(heartbeat_s=0.4, close_timeout_s=1.0)  # no pong within 0.2 s: the server closes
    async with serve(create_app(hub, settings=settings), "127.0.0.1", 0) as url:
        crowd = Crowd(url.replace("http", "ws", 1) + "/ws", viewers=1)
        (viewer,) = await asyncio.wait_for(connect_crowd(crowd), 30)
        await asyncio.sleep(3.0)  # several pings, each to be answered
        hub.publish(Caption("final", "u1", "en", "still here", 1.0, 2.0, 2.5))
        await _until(lambda: 1 in viewer.finals)
        assert viewer.connections == 1 and not viewer.closes
        viewer.stopping = True  # the shutdown's close is the end: no reconnect
    await _until(lambda: viewer.closes)
    assert dict(viewer.closes) == {"1001": 1}  # CLOSE_GOING_AWAY
    assert len(viewer.samples) == 1 and viewer.duplicates == 0


async def test_a_viewer_refused_at_the_handshake_records_the_http_status() -> None:
    hub = CaptionHub()
    hub.source_state(SourceState.CONNECTED)
    async with serve(create_app(hub, settings=ServerSettings(max_viewers=1)), "127.0.0.1", 0) as url:
        crowd = Crowd(url.replace("http", "ws", 1) + "/ws", viewers=1)
        (first,) = await asyncio.wait_for(connect_crowd(crowd), 30)
        loop = asyncio.get_running_loop()
        second = BenchViewer(first.address, crowd.ws_url, None, loop.create_future())
        second.stopping = True
        await second.connect()
        await _until(lambda: second.closes)
        first.stopping = True
        first.close()
    assert dict(second.closes) == {"http 503": 1} and not second.hellos
