"""`relay edge`: a stateless viewer server for an event a transcribing relay publishes to Redis.

The same page, the same `/ws` protocol (hello, backlog, `since`/`session` resume) and the same
limits as `relay serve`; no model, no source, no operator API. Its hub is fed by an `EdgeFeed`
and resumes from its memory ring of recent finals, or, further back, from the stream (one XRANGE
for all the viewers asking at once). When a relay starts the event afresh (a new session), the
edge builds a hub for it and closes its viewers with 1012: they reconnect into the new session.
`/healthz` and `/metrics` say how it is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from redis.asyncio import Redis

from relay.bus.feed import BLOCK_MS, EdgeFeed, FeedCounters, RedisBacklog, read_meta, recent_finals
from relay.bus.hls import HlsRedisReader
from relay.bus.stream import EventMeta, frames_key
from relay.hls.routes import add_hls_routes
from relay.hub import CaptionHub
from relay.metrics import ScrapedMetrics
from relay.redact import redact_url
from relay.serving import install_stop_signals, raise_open_files_limit, server_settings
from relay.protocol import CLOSE_SERVICE_RESTART
from relay.server import SLOTS_KEY, HubRef, create_app, serve
from relay.viewer_key import add_viewer_key, read_viewer_token

_LOGGER = logging.getLogger(__name__)

_META_POLL_S = 1.0


def redis_client(url: str) -> Redis:
    """A client whose socket timeout outlasts XREAD's BLOCK (or every blocking read would fail)."""
    return Redis.from_url(url, socket_timeout=BLOCK_MS / 1000 + 10, socket_connect_timeout=5)


async def wait_for_event(redis: Redis, event: str, where: str) -> EventMeta:
    """The event's meta, once a relay has published it (waiting for Redis and the relay)."""
    told = False
    while True:
        try:
            meta = await read_meta(redis, event)
        except (OSError, ConnectionError) as error:
            meta, reason = None, f"{where} unreachable ({type(error).__name__})"
        except Exception as error:  # redis.exceptions.* all derive from Exception
            meta, reason = None, f"{where}: {type(error).__name__}"
        else:
            reason = f"no event {event!r} on {where} yet"
        if meta is not None:
            return meta
        if not told:
            _LOGGER.warning("Waiting: %s", reason)
            told = True
        await asyncio.sleep(_META_POLL_S)


@dataclass(slots=True)
class EdgeSession:
    """What serves one session of the event: its hub, the feed that keeps the hub live, its HLS renditions."""

    hub: CaptionHub
    feed: EdgeFeed
    hls: HlsRedisReader


async def build_session(redis: Redis, event: str, meta: EventMeta, counters: FeedCounters) -> EdgeSession:
    """A hub for `meta`'s session, filled with its recent finals, and the feed that keeps it live."""
    key = frames_key(event, meta.session)
    recent, last_id, last = await recent_finals(redis, key)
    hub = CaptionHub(
        store=RedisBacklog(redis, key, recent, counters),
        last_seq=recent[-1].seq or 0 if recent else 0,
        session=meta.session,
        channels=meta.channels,
        tracks=meta.tracks,
        languages=meta.languages,
        label=meta.label,
    )
    for channel, state in meta.states.items():
        if channel in hub.channels:
            hub.source_state(state, channel)
    if last is not None and last.text.startswith(b'{"type":"end"'):
        hub.end_session(json.loads(last.text).get("reason", ""))  # the session ended before this edge started
    hls = HlsRedisReader(redis, event, meta.session)
    return EdgeSession(hub, EdgeFeed(redis, event, meta, hub, last_id, counters), hls)


class Edge:
    """The edge's current session, followed from one session of the event to the next."""

    def __init__(self, redis: Redis, event: str, first: EdgeSession, counters: FeedCounters) -> None:
        self._redis = redis
        self._event = event
        self.current = first
        self.ref = HubRef(first.hub)
        self.counters = counters
        self._earlier = {"dropped": 0, "resumes": 0}  # of the sessions before this one

    def total(self, name: str) -> int:
        """A hub counter (dropped, resumes) over every session this edge served."""
        return self._earlier[name] + int(getattr(self.current.hub, name))

    async def follow(self) -> None:
        """Feed the current session; when the event moves to a new one, serve that one instead."""
        hls = asyncio.create_task(self.current.hls.run())
        try:
            while True:
                meta = await self.current.feed.run()
                _LOGGER.info("Event %s moved to a new session; serving it", self._event)
                following = await build_session(self._redis, self._event, meta, self.counters)
                old, self.current = self.current.hub, following
                self.ref.hub = following.hub  # viewers connecting from now on attach to the new session
                hls.cancel()
                hls = asyncio.create_task(following.hls.run())
                for name in self._earlier:
                    self._earlier[name] += int(getattr(old, name))
                old.close_all(CLOSE_SERVICE_RESTART, "new session: reconnect")
        finally:
            hls.cancel()


def add_edge_routes(app: web.Application, edge: Edge) -> None:
    """`/healthz` (200 while Redis answers, else 503; a silent relay is named, not a 503: every
    edge would be pulled from the balancer) and `/metrics` (Prometheus text)."""
    metrics = ScrapedMetrics()
    slots = app[SLOTS_KEY]
    counters = edge.counters
    for name, text, read in (
        ("relay_edge_viewers", "Viewers connected to this edge.", lambda: edge.current.hub.viewer_count),
        ("relay_edge_redis_up", "1 while the edge reads the event from Redis.",
         lambda: float(edge.current.feed.connected)),
        ("relay_edge_relay_up", "1 while the transcribing relay's heartbeat or entries reach this edge.",
         lambda: float(not edge.current.feed.relay_silent)),
        ("relay_edge_last_seq", "Last final delivered by this edge.", lambda: edge.current.hub.seq),
        ("relay_edge_lag_seconds", "The last caption's publication at the relay to its delivery here.",
         lambda: counters.lag_s),
        ("relay_edge_idle_seconds", "Seconds since this edge last read an entry.", lambda: edge.current.feed.idle_s),
    ):
        metrics.gauge(name, text, read)
    for name, text, read in (
        ("relay_edge_entries_delivered", "Stream entries delivered to this edge's viewers.",
         lambda: counters.delivered),
        ("relay_edge_redis_failures", "Failed or stalled reads from Redis.", lambda: counters.failures),
        ("relay_edge_resumes", "Viewers that resumed from their last final.", lambda: edge.total("resumes")),
        ("relay_edge_far_resumes", "Resumes read from Redis (beyond the memory ring).", lambda: counters.far_resumes),
        ("relay_edge_viewers_dropped", "Viewers dropped as too slow.", lambda: edge.total("dropped")),
        ("relay_edge_viewers_refused", "Viewer connections refused by the limits.", lambda: slots.refused),
    ):
        metrics.counter(name, text, read)

    async def healthz(request: web.Request) -> web.Response:
        feed, hub = edge.current.feed, edge.current.hub
        up = feed.connected
        body = {"redis": "up" if up else "down", "relay": "silent" if feed.relay_silent else "up",
                "session": hub.session, "seq": hub.seq, "viewers": hub.viewer_count}
        return web.json_response(body, status=200 if up else 503)

    async def metrics_route(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_route)


async def start_edge(redis: Redis, event: str, where: str) -> Edge:
    """The edge for the event's current session, once a relay has published it."""
    counters = FeedCounters()
    meta = await wait_for_event(redis, event, where)
    return Edge(redis, event, await build_session(redis, event, meta, counters), counters)


async def run_edge(args: argparse.Namespace) -> int:
    raise_open_files_limit()
    where = redact_url(args.redis)
    viewer_token = read_viewer_token(args.viewer_token_file)  # an unreadable file fails before Redis is tried
    redis = redis_client(args.redis)
    stop = asyncio.Event()
    install_stop_signals(stop.set)
    try:
        starting = asyncio.create_task(start_edge(redis, args.event, where))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            return 0
        stopping.cancel()
        edge = starting.result()
        app = create_app(edge.ref, settings=server_settings(args))
        add_edge_routes(app, edge)
        add_hls_routes(app, lambda: edge.current.hls.window)
        add_viewer_key(app, viewer_token)
        async with serve(app, args.host, args.port) as url:
            print(f"relay: edge for event {args.event} ({where}): viewers open {url}/", flush=True)
            following = asyncio.create_task(edge.follow())
            await stop.wait()
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
    finally:
        await redis.aclose()
    return 0
