"""A live source whose encoder restarts mid-event with fresh timestamps (PTS back to 0), into
`relay transcribe --jsonl`: the speech after its return is captioned, not skipped as a replay."""

from __future__ import annotations

import time

import pytest

from bench.scoring import normalise, wer
from tests.support.live_hls import LiveHlsServer
from tests.support.media import MEETING_FLAC
from tests.test_e2e_hls import RelayProcess, _sleep_until

SPEED = 2.0
OUTAGE_STREAM_S = (50.0, 60.0)
CAPTIONED_WITHIN_S = 3.0  # speech that airs this long after the return must be captioned


@pytest.fixture(scope="module")
def restart_run():
    server = LiveHlsServer(MEETING_FLAC, segment_s=2.0, speed=SPEED).start()
    relay = RelayProcess(server.url)
    try:
        _sleep_until(server.wall_time_of(OUTAGE_STREAM_S[0]))
        server.stop()
        _sleep_until(server.wall_time_of(OUTAGE_STREAM_S[1]))
        server.start(reset_timestamps=True)
        returned_file_s = server.file_time_at()
        relay.proc.wait(timeout=(180 - OUTAGE_STREAM_S[1]) / SPEED + 90)
    finally:
        if relay.proc.poll() is None:
            relay.proc.kill()
        server.close()
    time.sleep(0.2)  # let the reader threads drain the pipes
    return relay, returned_file_s


def _matches(text: str, finals: list[dict]) -> bool:
    """True if one to three consecutive finals say `text` (WER at most 0.5)."""
    texts = [f["text"] for f in finals]
    for size in (1, 2, 3):
        for start in range(len(texts) - size + 1):
            if wer([text], [" ".join(texts[start:start + size])]) <= 0.5:
                return True
    return False


def test_speech_after_an_encoder_restart_is_captioned(restart_run, meeting_events):
    relay, returned_file_s = restart_run
    assert relay.proc.returncode == 0, "".join(relay.stderr)[-3000:]
    finals = [c for c in relay.captions if c["type"] == "final" and c["text"]]
    after = [e for e in meeting_events if e["kind"] == "speech" and e["start"] >= returned_file_s + CAPTIONED_WITHIN_S]
    assert len(after) >= 15
    missing = [e["text"] for e in after if not _matches(e["text"], finals)]
    assert not missing, f"not captioned after the restart: {missing}"


def test_speech_before_the_restart_is_captioned_once(restart_run, meeting_events):
    relay, _ = restart_run
    finals = [c for c in relay.captions if c["type"] == "final" and c["text"]]
    before = [e for e in meeting_events if e["kind"] == "speech" and e["end"] < OUTAGE_STREAM_S[0] - 3]
    assert all(_matches(e["text"], finals) for e in before)
    said = [normalise(f["text"]) for f in finals]
    assert len(said) == len(set(said)), "a sentence was captioned twice"


def test_the_event_clock_keeps_going_forward_over_the_restart(restart_run):
    relay, _ = restart_run
    finals = [c for c in relay.captions if c["type"] == "final"]
    starts = [c["start"] for c in finals]
    assert starts == sorted(starts)
    assert len({c["id"] for c in finals}) == len(finals)
    assert "reconnecting" in "".join(relay.stderr)
