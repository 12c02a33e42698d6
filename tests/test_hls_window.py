"""The served window of published segments: playlists, bodies, trimming, and its state for the edges."""

from __future__ import annotations

import json

import m3u8
import pytest

from relay.hls.packager import ClosedSegment, SegmentSpan
from relay.hls.playlist import MasterError
from relay.hls.window import HlsWindow, MasterSource

LANGS = ("en", "fr")
PRESENTATION = "0a1b2c"


def segment(sn: int, duration_s: float = 6.0, cc: int = 0, pdt: str | None = None) -> ClosedSegment:
    span = SegmentSpan(sn, sn * 6.0, duration_s, cc, pdt)
    return ClosedSegment(span, {lang: f"WEBVTT\n\n{lang} segment {sn}\n".encode() for lang in LANGS})


def window_of(*sns: int, max_s: float = 3600.0) -> HlsWindow:
    window = HlsWindow(LANGS, PRESENTATION, max_s=max_s)
    for sn in sns:
        window.add(segment(sn))
    return window


def listed(window: HlsWindow, lang: str = "fr") -> list[int]:
    """The sequence numbers the playlist lists, read back by m3u8."""
    text = window.playlist(lang)
    assert text is not None
    playlist = m3u8.M3U8(text, strict=True)
    return [playlist.media_sequence + index for index, _ in enumerate(playlist.segments)]


def test_the_playlist_lists_each_segment_under_its_presentation_and_number() -> None:
    playlist = m3u8.M3U8(window_of(3, 4, 5).playlist("fr"), strict=True)
    assert playlist.media_sequence == 3
    assert [s.uri for s in playlist.segments] == [f"fr/{PRESENTATION}-{sn}.vtt" for sn in (3, 4, 5)]


def test_a_query_is_added_to_every_segment_uri() -> None:
    text = window_of(0, 1).playlist("en", "?key=abc")
    uris = [s.uri for s in m3u8.M3U8(text, strict=True).segments]
    assert uris == [f"en/{PRESENTATION}-{sn}.vtt?key=abc" for sn in (0, 1)]


def test_the_target_duration_covers_the_longest_segment() -> None:
    window = HlsWindow(LANGS, PRESENTATION, target_duration_s=4)
    window.add(segment(0, duration_s=7.4))
    assert m3u8.M3U8(window.playlist("en"), strict=True).target_duration == 7


def test_discontinuities_and_program_date_times_reach_the_playlist() -> None:
    window = HlsWindow(LANGS, PRESENTATION)
    window.add(segment(0, cc=1, pdt="2024-05-01T09:00:00.000Z"))
    window.add(segment(1, cc=2, pdt="2024-05-01T09:30:00.000Z"))
    playlist = m3u8.M3U8(window.playlist("en"), strict=True)
    assert playlist.discontinuity_sequence == 1
    assert [s.discontinuity for s in playlist.segments] == [False, True]
    assert [s.program_date_time.minute for s in playlist.segments] == [0, 30]


def test_an_ended_window_ends_its_playlists() -> None:
    window = window_of(0)
    window.ended = True
    assert m3u8.M3U8(window.playlist("fr"), strict=True).is_endlist


def test_no_playlist_before_the_first_segment_or_for_another_language() -> None:
    assert HlsWindow(LANGS, PRESENTATION).playlist("fr") is None
    assert window_of(0).playlist("de") is None


def test_bodies_are_served_as_published() -> None:
    window = window_of(0, 1)
    assert window.body("fr", PRESENTATION, 1) == segment(1).bodies["fr"]
    assert window.body("de", PRESENTATION, 1) is None
    assert window.body("fr", PRESENTATION, 2) is None


def test_bodies_of_another_presentation_are_none() -> None:
    assert window_of(0).body("fr", "ffffff", 0) is None


def test_a_gap_in_sequence_numbers_starts_the_window_anew() -> None:
    window = window_of(0, 1, 2)
    assert window.add(segment(5)) == [0, 1, 2]
    assert listed(window) == [5]
    assert window.body("fr", PRESENTATION, 2) is None


def test_segments_before_the_sources_first_leave_the_window() -> None:
    window = window_of(0, 1, 2, 3)
    assert window.set_source_first_sn(2) == [0, 1]
    assert listed(window) == [2, 3]
    assert window.body("en", PRESENTATION, 1) is None
    assert window.add(segment(4)) == []


def test_the_newest_segment_stays_when_the_source_is_ahead() -> None:
    window = window_of(0, 1, 2)
    assert window.set_source_first_sn(100) == [0, 1]
    assert listed(window) == [2]


def test_the_window_keeps_at_most_max_s_of_segments() -> None:
    window = window_of(0, 1, 2, max_s=18.0)
    assert window.add(segment(3)) == [0]
    assert listed(window) == [1, 2, 3]


def test_the_newest_segment_stays_even_when_longer_than_max_s() -> None:
    window = window_of(0, max_s=5.0)
    assert window.add(segment(1)) == [0]
    assert listed(window) == [1]


def test_the_master_needs_a_source_master() -> None:
    window = window_of(0)
    with pytest.raises(MasterError, match="--hls-master"):
        window.master_playlist()


def test_the_master_names_the_renditions_with_the_query() -> None:
    window = window_of(0)
    window.master = MasterSource("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n", "https://o.example/live/m.m3u8")
    playlist = m3u8.M3U8(window.master_playlist("?key=k"), strict=True)
    assert [m.uri for m in playlist.media] == ["en.m3u8?key=k", "fr.m3u8?key=k"]
    assert playlist.playlists[0].uri == "https://o.example/live/v.m3u8"


def test_state_round_trip_gives_the_same_playlists_and_bodies() -> None:
    window = HlsWindow(LANGS, PRESENTATION, target_duration_s=4)
    window.master = MasterSource("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n", "https://o.example/live/m.m3u8")
    for sn, cc in ((7, 0), (8, 0), (9, 1)):
        window.add(segment(sn, duration_s=5.005, cc=cc, pdt=f"2024-05-01T09:00:{sn:02d}.000Z"))
    window.set_source_first_sn(8)
    window.ended = True
    bodies = {(lang, sn): body for sn in (8, 9) for lang in LANGS if (body := window.body(lang, PRESENTATION, sn))}
    copy = HlsWindow.from_state(json.loads(json.dumps(window.state())), bodies)
    for lang in LANGS:
        assert copy.playlist(lang, "?key=k") == window.playlist(lang, "?key=k")
        for sn in (8, 9):
            assert copy.body(lang, PRESENTATION, sn) == window.body(lang, PRESENTATION, sn)
    assert copy.master_playlist() == window.master_playlist()
    assert copy.segments == window.segments and copy.source_first_sn == 8


def test_state_round_trip_keeps_why_there_is_no_master() -> None:
    window = window_of(0)
    window.master_error = "the source address holds credentials"
    copy = HlsWindow.from_state(json.loads(json.dumps(window.state())), {})
    with pytest.raises(MasterError, match="credentials"):
        copy.master_playlist()
