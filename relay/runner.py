"""Running the relay in this process: `transcribe` and `serve`, from parsed arguments."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from relay.channel_input import open_event_channels
from relay.channels import AUTO, FLOOR
from relay.control import add_control_routes
from relay.event import BoothInput, Event
from relay.glossary import Glossary, GlossaryRouter
from relay.hls.routes import add_hls_routes
from relay.hls.saved import SavedSegments
from relay.hls.service import HlsService, HlsSettings
from relay.logfile import log_to_file, settings_from_args
from relay.modelstore import ModelError, resolve_model
from relay.pipeline import ChannelInput, PipelineSettings
from relay.rundir import RunDirectory
from relay.server import SLOTS_KEY, create_app, serve
from relay.serving import install_stop_signals, raise_open_files_limit, server_settings
from relay.service import RelayService, track_languages
from relay.source import SourceSettings
from relay.speakers import load_agenda
from relay.store import transcript_path
from relay.transcript_routes import add_transcript_routes
from relay.translation import CAPTION_LANGUAGES, CaptionTranslator
from relay.translation.commands import installed_directions
from relay.translation.router import Router
from relay.viewer_key import read_viewer_token
from relay.whisper_engine import DecodeSettings, WhisperEngine

_LOGGER = logging.getLogger(__name__)


def pipeline_settings(args: argparse.Namespace) -> PipelineSettings:
    return PipelineSettings(
        source=SourceSettings(url=args.source, realtime=args.realtime, stall_timeout_s=args.stall_timeout),
        languages=floor_languages(args),
    )


def floor_languages(args: argparse.Namespace) -> tuple[str, ...] | None:
    """`--languages`: what the floor may be detected as (None: any language)."""
    text = getattr(args, "languages", None)
    if text is None:
        return CAPTION_LANGUAGES
    if text.strip().lower() == "any":
        return None
    return tuple(dict.fromkeys(lang.strip().lower() for lang in text.split(",") if lang.strip()))


def has_booths(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "booth", None)) or getattr(args, "booths", None) == AUTO


async def open_booths(
    args: argparse.Namespace, floor: PipelineSettings
) -> tuple[ChannelInput | None, list[BoothInput]]:
    """Open the floor and booth channels (raises ChannelSourceError); the floor's input and the booths."""
    if not has_booths(args):
        return None, []
    inputs = await asyncio.to_thread(
        open_event_channels, floor.source, args.booth, auto=args.booths == AUTO
    )
    booths = [
        BoothInput(ci.spec.lang, PipelineSettings(ci.spec.source, channel=name, languages=(ci.spec.lang,)), ci)
        for name, ci in inputs.items() if name != FLOOR
    ]
    return inputs[FLOOR], booths


def load_engine(args: argparse.Namespace) -> WhisperEngine:
    """Resolve and load the Whisper model, then warm it up."""
    language = None if args.language == "auto" else args.language
    engine = WhisperEngine(
        resolve_model(args.model),
        DecodeSettings(language=language, final_beam_size=args.beam_size, workers=args.decode_workers or 0,
                       hotwords=Glossary.load(args.glossary).hotwords() if getattr(args, "glossary", None) else ()),
    )
    if language and not engine.multilingual and language != "en":
        raise ModelError(f"model {args.model!r} is English-only; it cannot transcribe {language!r}")
    engine.warm_up()
    return engine


@contextlib.asynccontextmanager
async def loaded_models(args: argparse.Namespace) -> AsyncIterator[tuple[WhisperEngine, CaptionTranslator | None]]:
    """Load Whisper and start the translation engines side by side; close both after."""
    engine, translator = await asyncio.gather(
        asyncio.to_thread(load_engine, args), asyncio.to_thread(load_translator, args)
    )
    try:
        yield engine, translator
    finally:
        engine.close()
        if translator is not None:
            translator.close()


async def transcribe(args: argparse.Namespace, sink) -> int:
    """Caption the floor (and its booths) until the sources end; `sink` takes captions and tracks."""
    settings = pipeline_settings(args)
    floor_input, booths = await open_booths(args, settings)
    paced = settings.source.paced
    event = Event(sink, track_languages(booths, not args.no_translate), booths, paced=paced, on_source_event=_log_source_event)
    pipeline = event.floor_pipeline(settings, channel_input=floor_input)
    await pipeline.open()  # a bad source fails before the models are loaded
    async with loaded_models(args) as (engine, translator):
        install_stop_signals(event.stop)
        await event.run_floor(engine, translator, pipeline)
    return 0


async def serve_relay(args: argparse.Namespace) -> int:
    raise_open_files_limit()
    rundir = RunDirectory(args.data)
    rundir.claim()  # before the log: a relay that lost the race must not rotate the winner's log
    service: RelayService | None = None
    try:
        log_settings = settings_from_args(args)
        if log_settings is not None:
            log_to_file(log_settings)
        if args.new_event:
            archive_transcript(rundir.path)
        operator_token = rundir.operator_token(token_file=args.operator_token_file)
        viewer_token = read_viewer_token(args.viewer_token_file)
        settings = pipeline_settings(args)
        floor_input, booths = await open_booths(args, settings)  # bad sources fail before models load
        agenda = load_agenda(args.agenda) if args.agenda else None
        service = RelayService(settings, rundir.path, booths, floor_input, translate=not args.no_translate,
                               agenda=agenda)
        await service.open()
        async with loaded_models(args) as (engine, translator):
            app = create_app(service.hub, settings=server_settings(args))
            add_control_routes(app, service, operator_token, viewer_token)
            slots = app[SLOTS_KEY]
            service.metrics.counter("relay_viewers_refused", "Viewer connections refused by the limits.", lambda: slots.refused)
            add_transcript_routes(app, transcript_path(rundir.path))
            hls = hls_service(args, service)
            add_hls_routes(app, lambda: hls.window)
            async with serve(app, args.host, args.port) as url, publishing(args, service, hls), packaging(service, hls):
                await _run_service(service, engine, translator, rundir, url, args)
    finally:
        if service is not None:
            service.close()
        rundir.release()
    return 0


def hls_service(args: argparse.Namespace, service: RelayService) -> HlsService:
    """The HLS subtitle renditions of the event's tracks, saved with the transcript."""
    saved = SavedSegments(service.store) if service.store is not None else None
    hls = HlsService(service.hub.tracks, service.pts_map, HlsSettings(args.source, args.hls_master), saved)
    service.hls = hls
    return hls


@contextlib.asynccontextmanager
async def packaging(service: RelayService, hls: HlsService) -> AsyncIterator[None]:
    """Close HLS subtitle segments while the relay runs; at the end, what was heard, and ENDLIST."""
    task = asyncio.create_task(hls.run(lambda: (service.floor_through_s, service.floor_stream_s)))
    try:
        yield
    finally:
        hls.finish(service.floor_stream_s)
        task.cancel()
        await asyncio.wait({task}, timeout=2.0)


@contextlib.asynccontextmanager
async def publishing(args: argparse.Namespace, service: RelayService, hls: HlsService | None = None
                     ) -> AsyncIterator[None]:
    """With --redis: copy every frame the hub delivers to the event's Redis stream meanwhile."""
    if not getattr(args, "redis", None):
        yield
        return
    from redis.asyncio import Redis

    from relay.bus.hls import HlsRedisPublisher
    from relay.bus.publisher import RedisPublisher
    from relay.bus.stream import EventMeta

    hub = service.hub
    meta = EventMeta(hub.session, list(hub.channels.items()), hub.tracks, hub.languages, hub.label, hub.states)
    redis = Redis.from_url(args.redis, socket_timeout=5, socket_connect_timeout=5)
    publisher = RedisPublisher(redis, args.event, meta, service.backlog, args.redis)
    hub.taps.append(publisher.offer)
    service.metrics.gauge("relay_redis_up", "1 while captions are published to Redis.", lambda: float(publisher.connected))
    service.metrics.counter("relay_redis_frames_published", "Frames written to Redis.", lambda: publisher.published)
    service.metrics.counter("relay_redis_finals_republished", "Finals written again from SQLite after an outage.",
                            lambda: publisher.republished)
    task = asyncio.create_task(publisher.run())
    segments = HlsRedisPublisher(redis, args.event, hub.session)
    if hls is not None:
        hls.listeners.append(segments.changed)
    segments_task = asyncio.create_task(segments.run())
    try:
        yield
    finally:
        # A stop never waits long for Redis: what it has not got by then, it gets from SQLite
        # when the relay publishes again.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(publisher.drained(), segments.drained()), 3.0)
        task.cancel()
        segments_task.cancel()
        await asyncio.wait({task, segments_task}, timeout=2.0)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(redis.aclose(), 2.0)


async def _run_service(service: RelayService, engine, translator, rundir: RunDirectory, url: str, args) -> None:
    token_file = str(args.operator_token_file.resolve()) if args.operator_token_file else None
    rundir.update_state(pid=os.getpid(), url=url, ready=True, started_at=service.started_at, token_file=token_file)
    print(f"relay: viewers open {url}/", flush=True)
    install_stop_signals(service.request_stop)
    await service.run(engine, translator)  # returns on a stop: an ended source waits for the next
    service.end("the operator stopped the relay")


def archive_transcript(data_dir: Path) -> None:
    """Move the previous event's transcript aside (kept, renamed with the time)."""
    path = transcript_path(data_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        old = path.with_name(path.name + suffix)
        if old.exists():
            old.rename(old.with_name(f"transcript-{stamp}.sqlite3{suffix}"))


def load_translator(args: argparse.Namespace) -> CaptionTranslator | None:
    """Discover the installed translation routes and start their engines."""
    if args.no_translate:
        return None
    router = Router.discover()
    if getattr(args, "glossary", None) is not None:
        router = GlossaryRouter(router, Glossary.load(args.glossary))
        _LOGGER.info("Glossary %s: machine translation follows its terms", args.glossary)
    translator = CaptionTranslator(router)
    translator.warm_up()
    for line in installed_directions():
        _LOGGER.info("Translation %s: %s (%s)", line.direction, line.engine, line.route)
    return translator


async def _log_source_event(channel: str, event) -> None:
    _LOGGER.info("Source of %s %s", channel, event.state.value)  # detail may quote the address
