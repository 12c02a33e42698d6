"""`relay` with one server setting changed, for benchmarks of slow viewers.

    python -m bench.relay_launch --viewer-buffer-bytes N serve SOURCE ...

Runs relay's own command line unchanged except the caption server's per-viewer limit of
unsent bytes (`ServerSettings.max_buffer_bytes`, 1 MiB in the product). A caption stream
carries well under 1 KB/s per viewer, so a slow reader takes hours to fall 1 MiB behind;
a smaller limit lets a 3-minute benchmark reach the drop-and-resume path.
"""

from __future__ import annotations

import argparse
import functools
import sys

from relay import cli, runner
from relay.server import ServerSettings, create_app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--viewer-buffer-bytes", type=int, required=True)
    ours, rest = parser.parse_known_args()
    settings = ServerSettings(max_buffer_bytes=ours.viewer_buffer_bytes)
    runner.create_app = functools.partial(create_app, settings=settings)  # type: ignore[assignment]
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main())
