"""Command line: `relay transcribe`, `serve`, `watch`, `translate`, `models`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from relay.modelstore import ModelError, load_catalogue, models_dir, resolve_model
from relay.hub import CaptionHub
from relay.output import JsonlWriter, TextWriter
from relay.server import create_app, serve
from relay.pipeline import Pipeline, PipelineSettings
from relay.source import SourceError, SourceSettings
from relay.translation import CaptionTranslator
from relay.translation.commands import (
    TranslationInstallError,
    install_translation_file,
    install_translation_from_index,
    installed_directions,
    run_translate,
)
from relay.watch import watch
from relay.whisper_engine import DecodeSettings, WhisperEngine

_LOGGER = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_SOURCE = 1
EXIT_USAGE = 2
EXIT_MODEL = 3


def build_parser() -> argparse.ArgumentParser:
    """All subcommands and their options."""
    parser = argparse.ArgumentParser(prog="relay", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    commands = parser.add_subparsers(dest="command", required=True)

    transcribe = commands.add_parser("transcribe", help="print live captions of a stream or file")
    add_pipeline_options(transcribe)
    transcribe.add_argument("--jsonl", action="store_true", help="one JSON object per caption line")
    transcribe.set_defaults(handler=cmd_transcribe)

    serve = commands.add_parser("serve", help="caption a stream for viewers: web page at /, captions at /ws")
    add_pipeline_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all)")
    serve.add_argument("--port", type=int, default=8080, help="port for the viewer page and /ws (0: any free)")
    serve.set_defaults(handler=cmd_serve)

    watch = commands.add_parser("watch", help="print the captions of a running relay")
    watch.add_argument("url", help="the relay's viewer URL, e.g. http://127.0.0.1:8080/")
    watch.add_argument("--lang", default=None, help="en, fr, es, or original (default)")
    watch.set_defaults(handler=cmd_watch)

    translate = commands.add_parser("translate", help="translate stdin to stdout, one sentence per line")
    translate.add_argument("--from", dest="src", required=True, help="language of the input, e.g. fr")
    translate.add_argument("--to", dest="tgt", required=True, help="language to translate into, e.g. en")
    translate.set_defaults(handler=cmd_translate)

    models = commands.add_parser("models", help="list or install Whisper and translation models")
    models.set_defaults(handler=cmd_models, action="list")
    actions = models.add_subparsers(dest="action")
    actions.add_parser("list", help="what is installed (default)")
    install = actions.add_parser("install", help="assemble and verify Whisper models from their packages")
    install.add_argument("name", nargs="?", help="a catalogue name (default: all)")
    install_mt = actions.add_parser(
        "install-translation", help="install an Argos Translate package: FILE.argosmodel, or SRC TGT from the index"
    )
    install_mt.add_argument("package", nargs="+", metavar="FILE | SRC TGT")
    return parser


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the pipeline."""
    parser.add_argument("source", help="URL or path FFmpeg can open (HLS, RTMP, SRT, file), or - for stdin")
    parser.add_argument("--realtime", action="store_true", help="pace a file at real time, as if live")
    parser.add_argument("--language", default="auto", help="auto (detect per utterance), en, fr, es...")
    parser.add_argument("--model", default="base", help="base, tiny.en, or a faster-whisper model directory")
    parser.add_argument("--beam-size", type=int, default=5, help="beam width of final decodes")
    parser.add_argument("--stall-timeout", type=float, default=10.0, help="seconds without data before reconnecting")
    parser.add_argument("--no-translate", action="store_true", help="captions in the spoken language only")


def pipeline_settings(args: argparse.Namespace) -> PipelineSettings:
    return PipelineSettings(
        source=SourceSettings(url=args.source, realtime=args.realtime, stall_timeout_s=args.stall_timeout)
    )


def load_engine(args: argparse.Namespace) -> WhisperEngine:
    """Resolve and load the Whisper model, then warm it up."""
    language = None if args.language == "auto" else args.language
    engine = WhisperEngine(
        resolve_model(args.model), DecodeSettings(language=language, final_beam_size=args.beam_size)
    )
    if language and not engine.multilingual and language != "en":
        raise ModelError(f"model {args.model!r} is English-only; it cannot transcribe {language!r}")
    engine.warm_up()
    return engine


def cmd_transcribe(args: argparse.Namespace) -> int:
    sink = JsonlWriter(sys.stdout) if args.jsonl else TextWriter(sys.stdout, sys.stdout.isatty())
    return asyncio.run(_transcribe(args, sink))


async def _transcribe(args: argparse.Namespace, sink) -> int:
    pipeline = Pipeline(pipeline_settings(args), sink, _log_source_event)
    await pipeline.open()  # a bad source fails before the models are loaded
    engine, translator = await asyncio.gather(
        asyncio.to_thread(load_engine, args), asyncio.to_thread(load_translator, args)
    )
    try:
        install_stop_signals(pipeline.stop)
        await pipeline.run(engine, translator)
    finally:
        engine.close()
        if translator is not None:
            translator.close()
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    hub = CaptionHub()

    async def publish(caption) -> None:
        hub.publish(caption)

    async def on_source_event(event) -> None:
        await _log_source_event(event)
        hub.source_state(event.state, event.detail)

    pipeline = Pipeline(pipeline_settings(args), publish, on_source_event)
    await pipeline.open()
    engine, translator = await asyncio.gather(
        asyncio.to_thread(load_engine, args), asyncio.to_thread(load_translator, args)
    )
    stopping = asyncio.Event()
    try:
        async with serve(create_app(hub), args.host, args.port) as url:
            print(f"relay: viewers open {url}/", flush=True)
            def stop() -> None:
                stopping.set()
                pipeline.stop()

            install_stop_signals(stop)
            await pipeline.run(engine, translator)
            if not stopping.is_set():
                _LOGGER.info("Source ended; still serving the transcript at %s (Ctrl-C to stop)", url)
                hub.end_session("the livestream ended")
                await stopping.wait()
            else:
                hub.end_session("the operator stopped the relay")
    finally:
        engine.close()
        if translator is not None:
            translator.close()
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    return asyncio.run(watch(args.url, args.lang, sys.stdout))


def load_translator(args: argparse.Namespace) -> CaptionTranslator | None:
    """Discover the installed translation routes and start their engines."""
    if args.no_translate:
        return None
    translator = CaptionTranslator()
    translator.warm_up()
    for line in installed_directions():
        _LOGGER.info("Translation %s: %s (%s)", line.direction, line.engine, line.route)
    return translator


async def _log_source_event(event) -> None:
    _LOGGER.info("Source %s: %s", event.state.value, event.detail)


def install_stop_signals(stop) -> None:
    """First Ctrl-C / SIGTERM stops gracefully (pending speech is committed); a second forces."""
    loop = asyncio.get_running_loop()
    calls = {"n": 0}

    def on_signal() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            _LOGGER.info("Stopping: committing pending captions (again to force)")
            stop()
        else:
            raise SystemExit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


def cmd_translate(args: argparse.Namespace) -> int:
    return run_translate(args.src, args.tgt, sys.stdin, sys.stdout)


def cmd_models(args: argparse.Namespace) -> int:
    catalogue = load_catalogue()
    if args.action == "install":
        for name in [args.name] if args.name else list(catalogue):
            print(f"{name}: {resolve_model(name)}")
    elif args.action == "install-translation":
        print(_install_translation(args.package))
    else:
        for entry in catalogue.values():
            packages = " + ".join(p.package for p in entry.parts)
            state = "assembled" if (models_dir() / entry.name / "model.bin").is_file() else "not assembled"
            print(f"whisper      {entry.name:10s} {state:14s} {entry.description} [{packages}]")
        for line in installed_directions():
            print(f"translation  {line.direction:10s} {line.engine:14s} {line.route}")
    return EXIT_OK


def _install_translation(words: list[str]) -> str:
    if len(words) == 1:
        return install_translation_file(words[0])
    if len(words) == 2:
        return install_translation_from_index(words[0], words[1])
    raise TranslationInstallError("install-translation takes FILE.argosmodel or SRC TGT")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except SourceError as exc:
        print(f"relay: cannot read source {args.source!r}: {exc}", file=sys.stderr)
        return EXIT_SOURCE
    except (ModelError, TranslationInstallError) as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
