"""What every serving process needs before it serves: open-files limit, stop signals, viewer settings.

Shared by `relay serve` (relay/runner.py) and `relay edge` (relay/edge.py); kept apart from the
runner so that an edge never imports the model stack (faster-whisper, CTranslate2, PyAV).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import signal

from relay.server import ServerSettings

_LOGGER = logging.getLogger(__name__)


def server_settings(args: argparse.Namespace) -> ServerSettings:
    """Viewer limits and framing policy from `serve`/`start` options."""
    return ServerSettings(
        max_viewers=args.max_viewers,
        max_viewers_per_address=args.max_viewers_per_address,
        trust_forwarded_for=args.trust_forwarded_for,
        frame_ancestors=args.frame_ancestors,
    )


def raise_open_files_limit(wanted: int = 65536) -> None:
    """Each viewer holds a socket: lift the soft limit (often 1,024) as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, max(soft, wanted))
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


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
