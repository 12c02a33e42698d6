"""A relay killed mid-event and started again serves the very same HLS segments, and numbers on.

A live HLS stream of the meeting over 127.0.0.1 (a media playlist as source, 2 s segments), `relay
serve` on it, SIGKILL once the French rendition lists several segments, the same command again on
the same data directory. Segments are immutable once listed (a CDN keeps them): after the restart
every segment listed before is still listed with the same bytes, none is closed again, and new
ones follow without a gap.
"""

from __future__ import annotations

import re
import time

from tests.support.hls_client import fetch_rendition, listed
from tests.support.live_hls import LiveHlsServer
from tests.support.media import MEETING_FLAC
from tests.test_source_lifecycle import Serve

_URI = re.compile(r"fr/([0-9a-f]+)-(\d+)\.vtt")


def _numbers(files: dict[str, bytes]) -> list[int]:
    return [int(_URI.fullmatch(name).group(2)) for name in listed(files)]


def _wait_for(fetch, check, timeout_s: float, what: str) -> dict[str, bytes]:
    deadline = time.monotonic() + timeout_s
    files: dict[str, bytes] = {}
    while time.monotonic() < deadline:
        files = fetch()
        if check(files):
            return files
        time.sleep(0.5)
    raise AssertionError(f"never {what}: {files.get('playlist')}")


def test_a_restarted_relay_serves_the_same_segments_and_numbers_on(tmp_path) -> None:
    with LiveHlsServer(MEETING_FLAC, segment_s=2.0, window=40) as server:
        first = Serve(server.url, tmp_path / "data")
        try:
            before = _wait_for(lambda: fetch_rendition(first.url, "fr"),
                               lambda files: len(listed(files)) >= 6 and any(b"-->" in files[n] for n in listed(files)),
                               120, "six French segments with cues")
        finally:
            first.kill()
        second = Serve(server.url, tmp_path / "data")
        try:
            last_before = _numbers(before)[-1]
            after = _wait_for(lambda: fetch_rendition(second.url, "fr"),
                              lambda files: bool(listed(files)) and _numbers(files)[-1] >= last_before + 4,
                              120, "four new segments after the restart")
        finally:
            second.kill()
    numbers = _numbers(after)
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # contiguous: nothing closed twice
    assert numbers[0] <= _numbers(before)[0]  # the window listed before is listed still
    assert {_URI.fullmatch(n).group(1) for n in listed(before)} == {_URI.fullmatch(n).group(1) for n in listed(after)}
    for name in listed(before):
        assert after[name] == before[name], name  # the very same bytes
    new = [name for name in listed(after) if name not in before]
    assert any(b"-->" in after[name] for name in new)  # and captions go on in the new ones
