"""`relay status` in words: the transcript's state and, for an interpreted event, each channel."""

from __future__ import annotations

import io

from relay.daemon import _print_status


def _report(**extra) -> dict:
    source = {"state": "connected", "since": 0.0, "url": "https://cdn.example.org/live.m3u8?***"}
    return {
        "running": True, "pid": 42, "url": "http://127.0.0.1:8080", "uptime_s": 61.0, "source": source,
        "viewers": 3, "captions_published": 12, "language": "fr", "caption_delay_s": 0.8, **extra,
    }  # fmt: skip


def _text(report: dict) -> str:
    out = io.StringIO()
    _print_status(report, as_json=False, out=out)
    return out.getvalue()


def test_a_failing_transcript_is_shown_with_what_waits() -> None:
    store = {"durable": True, "ok": False, "pending": 7, "error": "database or disk is full"}
    text = _text(_report(store=store))
    assert "transcript FAILING: 7 finals wait in memory (database or disk is full)" in text


def test_a_healthy_transcript_is_written() -> None:
    assert "transcript written" in _text(_report(store={"durable": True, "ok": True, "pending": 0}))


def test_each_channel_of_an_interpreted_event_has_a_line() -> None:
    def channel(state: str, finals: int) -> dict:
        url = "rtmp://***@ingest.example.org/live/***"
        return {"source": {"state": state, "url": url}, "finals": finals, "speech_s": 40.5, "caption_delay_s": 1.1}

    text = _text(_report(channels={"floor": channel("connected", 9), "booth-fr": channel("reconnecting", 4)}))
    lines = text.splitlines()
    floor = next(line for line in lines if line.strip().startswith("floor"))
    booth = next(line for line in lines if line.strip().startswith("booth-fr"))
    assert "connected" in floor and "9 finals" in floor
    assert "reconnecting" in booth and "4 finals" in booth and "rtmp://***@" in booth


def test_a_single_channel_event_has_no_channel_lines() -> None:
    channels = {"floor": {"source": {"state": "connected", "url": "x"}, "finals": 1, "speech_s": 1.0,
                          "caption_delay_s": None}}  # fmt: skip
    assert not any(line.startswith("  floor") for line in _text(_report(channels=channels)).splitlines())
