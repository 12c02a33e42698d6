"""`relay edge`: a stateless viewer server for an event a transcribing relay publishes to Redis.

The same page, the same `/ws` protocol (hello, backlog, `since`/`session` resume) and the same
limits as `relay serve`; no model, no source, no operator API. Its hub is fed by an `EdgeFeed`
and resumes from its memory ring of recent finals, or, further back, from the stream (one XRANGE
for all the viewers asking at once). `/healthz` and `/metrics` say how it is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from redis.asyncio import Redis

from relay.bus.feed import BLOCK_MS, EdgeFeed, RedisBacklog, read_meta, recent_finals
from relay.bus.stream import EventMeta, frames_key
from relay.hub import CaptionHub
from relay.metrics import ScrapedMetrics
from relay.redact import redact_url
from relay.runner import install_stop_signals, raise_open_files_limit, server_settings
from relay.server import SLOTS_KEY, create_app, serve

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


async def build_edge(redis: Redis, event: str, where: str) -> tuple[CaptionHub, EdgeFeed, RedisBacklog]:
    """The edge's hub, filled with the event's recent finals, and the feed that keeps it live."""
    meta = await wait_for_event(redis, event, where)
    key = frames_key(event, meta.session)
    recent, last_id, last = await recent_finals(redis, key)
    backlog = RedisBacklog(redis, key, recent)
    hub = CaptionHub(
        store=backlog,
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
        hub.end_session(json.loads(last.text).get("reason", ""))  # the event ended before this edge started
    return hub, EdgeFeed(redis, event, meta, hub, last_id), backlog


def add_edge_routes(app: web.Application, hub: CaptionHub, feed: EdgeFeed, backlog: RedisBacklog) -> None:
    """`/healthz` (200 while Redis answers, else 503) and `/metrics` (Prometheus text)."""
    metrics = ScrapedMetrics()
    slots = app[SLOTS_KEY]
    for name, text, read in (
        ("relay_edge_viewers", "Viewers connected to this edge.", lambda: hub.viewer_count),
        ("relay_edge_redis_up", "1 while the edge reads the event from Redis.", lambda: float(feed.connected)),
        ("relay_edge_last_seq", "Last final delivered by this edge.", lambda: hub.seq),
        ("relay_edge_idle_seconds", "Seconds since this edge last read an entry.", lambda: feed.lag_s),
    ):
        metrics.gauge(name, text, read)
    for name, text, read in (
        ("relay_edge_entries_delivered", "Stream entries delivered to this edge's viewers.", lambda: feed.delivered),
        ("relay_edge_redis_failures", "Failed or stalled reads from Redis.", lambda: feed.failures),
        ("relay_edge_far_resumes", "Resumes read from Redis (beyond the memory ring).", lambda: backlog.reads),
        ("relay_edge_viewers_dropped", "Viewers dropped as too slow.", lambda: hub.dropped),
        ("relay_edge_viewers_refused", "Viewer connections refused by the limits.", lambda: slots.refused),
    ):
        metrics.counter(name, text, read)

    async def healthz(request: web.Request) -> web.Response:
        body = {"redis": "up" if feed.connected else "down", "seq": hub.seq, "viewers": hub.viewer_count}
        return web.json_response(body, status=200 if feed.connected else 503)

    async def metrics_route(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_route)


async def run_edge(args: argparse.Namespace) -> int:
    raise_open_files_limit()
    where = redact_url(args.redis)
    redis = redis_client(args.redis)
    stop = asyncio.Event()
    install_stop_signals(stop.set)
    try:
        building = asyncio.create_task(build_edge(redis, args.event, where))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({building, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not building.done():
            building.cancel()
            return 0
        stopping.cancel()
        hub, feed, backlog = building.result()
        app = create_app(hub, settings=server_settings(args))
        add_edge_routes(app, hub, feed, backlog)
        async with serve(app, args.host, args.port) as url:
            print(f"relay: edge for event {args.event} ({where}): viewers open {url}/", flush=True)
            feeding = asyncio.create_task(feed.run())
            await stop.wait()
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeding
    finally:
        await redis.aclose()
    return 0
