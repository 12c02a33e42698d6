"""Published HLS segments in a real transcript database: a restarted relay takes its presentation up again."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.hls.packager import ClosedSegment, SegmentSpan, SubtitlePackager
from relay.hls.pts import PtsMap
from relay.hls.saved import SavedSegments
from relay.hls.window import HlsWindow, MasterSource
from relay.store import TranscriptStore, transcript_path
from relay.tracks.model import TrackCaption
from tests.test_store_failure import limit_pages

LANGS = ("en", "ar")
SOURCE = "3f2a9c0d11e4b7a8"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TranscriptStore]:
    with TranscriptStore(transcript_path(tmp_path)) as opened:
        yield opened


def closed_segments(count: int) -> list[ClosedSegment]:
    """Segments as the packager renders them: UTF-8 cues in two scripts, a speaker, a discontinuity."""
    pts = PtsMap()
    pts.observe(0.0, 8_589_000_000)  # close to the 33-bit wrap
    packager = SubtitlePackager(LANGS, pts)
    spans = [SegmentSpan(sn, sn * 6.0, 6.0, sn // 3, f"2024-05-01T09:00:{sn * 6:02d}.000Z") for sn in range(count)]
    packager.add_spans(spans)
    for n in range(count):
        for lang, text in (("en", f"Point {n} & <more>, café."), ("ar", f"النقطة {n} «مهمة»")):
            packager.add_track(2 * n + (lang == "ar"), TrackCaption(lang, "floor", "floor", f"{lang}:u{n}", text,
                               n * 6.0 + 1.0, n * 6.0 + 7.0, (f"u{n}",), "en", speaker="Zoë N."))
    closed = packager.close_due(through_s=count * 6.0, processed_s=count * 6.0)
    assert len(closed) == count
    return closed


def published(saved: SavedSegments, count: int = 5, source_key: str = SOURCE) -> HlsWindow:
    """A window that published `count` segments, each saved as it closed."""
    window = HlsWindow(LANGS, "0123456789ab", target_duration_s=6)
    window.master = MasterSource("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n", "https://o.example/m.m3u8")
    saved.save(window, source_key)
    for segment in closed_segments(count):
        window.add(segment)
        saved.save(window, source_key, segment)
    return window


def test_a_saved_window_is_loaded_back_identical(store: TranscriptStore) -> None:
    window = published(SavedSegments(store))
    loaded = SavedSegments(store).load(SOURCE)
    assert loaded is not None
    assert (loaded.presentation, loaded.langs, loaded.last_sn) == (window.presentation, LANGS, 4)
    assert loaded.segments == window.segments
    for lang in LANGS:
        assert loaded.playlist(lang, "?key=k") == window.playlist(lang, "?key=k")
        for span in window.segments:
            assert loaded.body(lang, window.presentation, span.sn) == window.body(lang, window.presentation, span.sn)
    assert loaded.master_playlist() == window.master_playlist()


def test_a_window_reopened_from_disk_is_loaded_back(tmp_path: Path) -> None:
    with TranscriptStore(transcript_path(tmp_path)) as first:
        window = published(SavedSegments(first), count=2)
    with TranscriptStore(transcript_path(tmp_path)) as second:
        loaded = SavedSegments(second).load(SOURCE)
    assert loaded is not None and loaded.playlist("ar") == window.playlist("ar")
    assert loaded.body("ar", window.presentation, 1) == window.body("ar", window.presentation, 1)


def test_the_window_trimmed_by_the_source_is_trimmed_when_loaded(store: TranscriptStore) -> None:
    saved = SavedSegments(store)
    window = published(saved)
    window.set_source_first_sn(3)
    saved.save(window, SOURCE)
    loaded = saved.load(SOURCE)
    assert loaded is not None
    assert [s.sn for s in loaded.segments] == [3, 4]
    assert loaded.playlist("en") == window.playlist("en")


def test_a_presentation_without_segments_is_resumed_empty(store: TranscriptStore) -> None:
    saved = SavedSegments(store)
    window = HlsWindow(LANGS, "feedface", target_duration_s=4)
    saved.save(window, SOURCE)
    loaded = saved.load(SOURCE)
    assert loaded is not None
    assert (loaded.presentation, loaded.segments, loaded.target_duration_s) == ("feedface", [], 4)


def test_an_ended_presentation_is_not_resumed(store: TranscriptStore) -> None:
    saved = SavedSegments(store)
    window = published(saved)
    window.ended = True
    saved.save(window, SOURCE)
    assert saved.load(SOURCE) is None


def test_another_source_is_not_resumed(store: TranscriptStore) -> None:
    saved = SavedSegments(store)
    published(saved)
    assert saved.load("0000000000000000") is None


def test_the_latest_presentation_of_the_source_is_resumed(store: TranscriptStore) -> None:
    saved = SavedSegments(store)
    published(saved)
    newer, (segment,) = HlsWindow(LANGS, "bbbbbbbbbbbb"), closed_segments(1)
    newer.add(segment)
    saved.save(newer, SOURCE, segment)
    loaded = saved.load(SOURCE)
    assert loaded is not None and (loaded.presentation, loaded.last_sn) == ("bbbbbbbbbbbb", 0)


def test_a_full_database_warns_once_and_saves_again_once_it_recovers(
    store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    saved = SavedSegments(store)
    window = published(saved, count=1)
    limit_pages(store, None)
    segments = closed_segments(40)
    with caplog.at_level(logging.INFO, logger="relay.hls.saved"):
        for segment in segments[1:]:
            window.add(segment)
            saved.save(window, SOURCE, segment)  # does not raise
        limit_pages(store, 1_000_000)
        saved.save(window, SOURCE, segments[-1])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not saved" in warnings[0].getMessage()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == ["HLS segments saved again"]
    loaded = saved.load(SOURCE)
    assert loaded is not None and loaded.last_sn == 39


def test_a_closed_database_warns_once_and_does_not_raise(
    store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    saved = SavedSegments(store)
    window = published(saved, count=1)
    store.close()
    with caplog.at_level(logging.WARNING, logger="relay.hls.saved"):
        for segment in closed_segments(3):
            saved.save(window, SOURCE, segment)
    assert len(caplog.records) == 1 and "served from memory" in caplog.records[0].getMessage()


def test_a_database_that_cannot_be_read_starts_a_new_presentation(
    store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    saved = SavedSegments(store)
    published(saved, count=1)
    store.close()
    with caplog.at_level(logging.WARNING, logger="relay.hls.saved"):
        assert saved.load(SOURCE) is None
    assert len(caplog.records) == 1 and "not read" in caplog.records[0].getMessage()
