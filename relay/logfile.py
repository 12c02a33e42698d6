"""`relay serve --log-file`: one size-rotated file for log records, stdout and stderr alike."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True, slots=True)
class LogFileSettings:
    """Where the log goes and how much of it is kept (max_bytes 0: never rotate)."""

    path: Path
    max_bytes: int = DEFAULT_MAX_BYTES
    backups: int = DEFAULT_BACKUPS


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """Options of `serve` and `start` (start passes DATA/relay.log as --log-file)."""
    parser.add_argument("--log-file", type=Path, default=None,
                        help="write the log, stdout and stderr to FILE, rotated by size (default: the terminal)")
    parser.add_argument("--log-max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help="rotate the log file at this size (default 10 MiB; 0: never, e.g. for logrotate)")
    parser.add_argument("--log-backups", type=_positive, default=DEFAULT_BACKUPS,
                        help="rotated files kept: FILE.1 (newest) to FILE.N (default 5)")


def settings_from_args(args: argparse.Namespace) -> LogFileSettings | None:
    if args.log_file is None:
        return None
    return LogFileSettings(args.log_file.expanduser().resolve(), max(0, args.log_max_bytes), args.log_backups)


class _CapturingHandler(RotatingFileHandler):
    """Also points fds 1 and 2 at the current file, so prints, tracebacks and C libraries rotate with it."""

    def _open(self):  # type: ignore[no-untyped-def]
        stream = super()._open()
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in (1, 2):
            os.dup2(stream.fileno(), fd)  # after a rollover, too: otherwise stderr keeps growing FILE.1
        return stream


def log_to_file(settings: LogFileSettings) -> None:
    """Send this process's logging and its stdout/stderr to the rotated file."""
    settings.path.parent.mkdir(parents=True, exist_ok=True)
    handler = _CapturingHandler(
        settings.path, maxBytes=settings.max_bytes, backupCount=settings.backups, encoding="utf-8"
    )
    if settings.max_bytes and settings.path.stat().st_size >= settings.max_bytes:
        handler.doRollover()  # start this run in a fresh file rather than past the limit
    root = logging.getLogger()
    formatter = next((h.formatter for h in root.handlers if h.formatter), None) or logging.Formatter(_FORMAT)
    handler.setFormatter(formatter)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 (with 0 backups the file would never shrink)")
    return value
