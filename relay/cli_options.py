"""The command line's shared option groups and the checks on their values (one-line errors at parse time)."""

from __future__ import annotations

import argparse
from pathlib import Path

from relay.channels import AUTO, parse_booth
from relay.redact import redact_url
from relay.server import check_frame_ancestors
from relay.speakers import SpeakerError, load_agenda


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the pipeline."""
    parser.add_argument("source", help="URL or path FFmpeg can open (HLS, RTMP, SRT, file), or - for stdin")
    parser.add_argument("--realtime", action="store_true", help="pace a file at real time, as if live")
    parser.add_argument("--language", default="auto", help="auto (detect per utterance), en, fr, es...")
    parser.add_argument("--model", default="base", help="base, tiny.en, or a faster-whisper model directory")
    parser.add_argument("--beam-size", type=int, default=5, help="beam width of final decodes")
    parser.add_argument("--decode-workers", type=_positive_int, default=None, metavar="N",
                        help="Whisper decodes run side by side (default: one per core, at most 4; each "
                             "holds a copy of the model)")
    parser.add_argument("--stall-timeout", type=float, default=10.0, help="seconds without data before reconnecting")
    parser.add_argument("--no-translate", action="store_true", help="captions in the spoken language only")
    parser.add_argument("--booth", action="append", type=parse_booth, default=[], metavar="LANG=SOURCE",
                        help="an interpreter booth channel in its own source, e.g. fr=srt://host:9001 (repeatable)")
    parser.add_argument("--languages", default=None, metavar="L1,L2|any",
                        help="languages the floor may be detected as (default: the caption languages en,fr,es; any: all)")
    parser.add_argument("--booths", choices=[AUTO], default=None,
                        help="auto: booth channels from the source's audio tracks, by language tag (see relay probe)")


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """Options of `serve` and `start`."""
    add_pipeline_options(parser)
    add_viewer_server_options(parser)
    parser.add_argument("--data", type=Path, default=None, help="data directory: transcript, log, pid (default: per-user)")
    parser.add_argument("--new-event", action="store_true", help="set the data directory's transcript aside and start afresh")
    parser.add_argument("--operator-token-file", type=Path, default=None,
                        help="file holding the /api/ token (default: $RELAY_OPERATOR_TOKEN or DATA/operator.token)")
    parser.add_argument("--glossary", type=glossary_file, default=None, metavar="CSV",
                        help="the meeting's terms (columns en,fr,es): machine translation renders them exactly")
    parser.add_argument("--agenda", type=_agenda_file, default=None, metavar="CSV",
                        help="speakers in order (name,affiliation,language), called with `relay speaker --next`")
    parser.add_argument("--redis", type=redis_url, default=None, metavar="URL",
                        help="also publish the captions to Redis Streams for `relay edge` servers, e.g. redis://host:6379/0")
    parser.add_argument("--event", type=event_name, default="main", help="the event's name on Redis (default main)")
    parser.add_argument("--hls-master", type=hls_master_url, default=None, metavar="URL",
                        help="the public HLS master players load, to serve with the caption renditions at "
                             "/hls/master.m3u8 (default: the source, when it is HLS)")


def add_viewer_server_options(parser: argparse.ArgumentParser) -> None:
    """Where viewers connect, and the limits on them: `serve`, `start` and `edge`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all)")
    parser.add_argument("--port", type=int, default=8080, help="port for the viewer page and /ws (0: any free)")
    parser.add_argument("--max-viewers", type=_positive_int, default=10_000,
                        help="viewer connections in all (default 10000)")
    parser.add_argument("--max-viewers-per-address", type=_count, default=200,
                        help="viewer connections per client address (default 200; 0: no cap)")
    parser.add_argument("--trust-forwarded-for", action="store_true",
                        help="behind a reverse proxy: count viewers by the address it appends to X-Forwarded-For")
    parser.add_argument("--viewer-token-file", type=_key_file, default=None, help="make the event private: viewers need this key")
    parser.add_argument("--frame-ancestors", type=_frame_ancestors, default="'none'",
                        help="who may embed the viewer page in a frame, e.g. https://obs.example.org (default 'none')")


def glossary_file(text: str) -> Path:
    """A glossary CSV the relay can read (checked now: a bad one fails before the models load)."""
    from relay.glossary import Glossary, GlossaryError

    try:
        Glossary.load(Path(text))
    except GlossaryError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return Path(text)


def _agenda_file(text: str) -> Path:
    """An agenda CSV the relay can read (checked now: a bad one fails before the models load)."""
    try:
        load_agenda(Path(text))
    except SpeakerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return Path(text)


def _key_file(text: str) -> Path:
    """A readable file holding a key (never an empty one: that would make a private event public)."""
    path = Path(text)
    try:
        key = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {exc.strerror or exc}") from None
    if not key:
        raise argparse.ArgumentTypeError(f"{text} is empty: put the viewers' key in it")
    return path


def redis_url(text: str) -> str:
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError(f"not a Redis URL (redis://HOST:PORT/DB): {redact_url(text)[:80]!r}")
    return text


def hls_master_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"not an http(s) URL of an HLS master playlist: {redact_url(text)[:80]!r}")
    return text


def event_name(text: str) -> str:
    if not text or len(text) > 64 or not all(c.isalnum() or c in "-_." for c in text):
        raise argparse.ArgumentTypeError("an event name is 1-64 letters, digits, '-', '_' or '.'")
    return text


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _frame_ancestors(text: str) -> str:
    try:
        return check_frame_ancestors(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
