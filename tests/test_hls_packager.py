"""Which cues go in which subtitle segment, and when each segment closes for good."""

from __future__ import annotations

import io

import pytest
import webvtt

from relay.hls.packager import ClosedSegment, FixedSegmentation, SegmentSpan, SubtitlePackager
from relay.hls.pts import PtsMap
from relay.tracks.model import TrackCaption


def track(lang: str, n: int, start: float, end: float, text: str = "", source: str = "floor") -> TrackCaption:
    return TrackCaption(lang=lang, source=source, channel="floor", id=f"{lang}:u{n}", text=text or f"Sentence {n}.",
                        start=start, end=end, covers=(f"u{n}",), floor_lang="en")


def spans(count: int, first_sn: int = 0, segment_s: float = 6.0) -> list[SegmentSpan]:
    return [SegmentSpan(sn, sn * segment_s, segment_s) for sn in range(first_sn, first_sn + count)]


def packager(*langs: str, max_wait_s: float = 20.0, last_closed_sn: int | None = None) -> SubtitlePackager:
    pts = PtsMap()
    pts.observe(0.0, 90_000)
    return SubtitlePackager(langs or ("en",), pts, max_wait_s, last_closed_sn)


def captions(segment: ClosedSegment, lang: str = "en") -> list[tuple[str, str, str, str]]:
    """(identifier, start, end, text) of each cue of the segment's `lang` file, read by webvtt-py."""
    parsed = webvtt.from_buffer(io.StringIO(segment.bodies[lang].decode()), strict=True)
    return [(c.identifier, c.start, c.end, c.text) for c in parsed.captions]


def test_a_segment_closes_once_every_final_through_its_end_is_out() -> None:
    packing = packager()
    packing.add_spans(spans(3))
    assert packing.close_due(through_s=5.99, processed_s=10.0) == []
    assert [s.sn for s in packing.close_due(through_s=6.0, processed_s=10.0)] == [0]
    assert [s.sn for s in packing.close_due(through_s=18.0, processed_s=18.0)] == [1, 2]
    assert packing.last_closed_sn == 2 and packing.open_spans == []


def test_segments_close_in_sequence_order_whatever_order_they_came_in() -> None:
    packing = packager()
    packing.add_spans(reversed(spans(4)))
    assert [s.sn for s in packing.close_due(through_s=13.0, processed_s=13.0)] == [0, 1]
    assert [s.sn for s in packing.open_spans] == [2, 3]


def test_a_segment_waits_at_most_max_wait_after_its_end_was_processed() -> None:
    packing = packager(max_wait_s=20.0)
    packing.add_spans(spans(2))
    assert packing.close_due(through_s=1.0, processed_s=25.99) == []
    assert [s.sn for s in packing.close_due(through_s=1.0, processed_s=26.0)] == [0]


def test_finishing_closes_the_segments_begun_before_processed() -> None:
    packing = packager()
    packing.add_spans(spans(4))
    closed = packing.close_due(through_s=3.0, processed_s=12.5, finishing=True)
    assert [s.sn for s in closed] == [0, 1, 2]
    assert [s.sn for s in packing.open_spans] == [3]  # no audio of it was heard: left unpublished


def test_a_cue_overlapping_two_segments_is_in_both_with_the_same_text_and_times() -> None:
    packing = packager()
    packing.add_spans(spans(3))
    packing.add_track(7, track("en", 1, 5.0, 7.5, "This sentence straddles the boundary."))
    first, second, third = packing.close_due(through_s=18.0, processed_s=18.0)
    expected = [("7", "00:00:05.000", "00:00:07.500", "This sentence straddles the boundary.")]
    assert captions(first) == captions(second) == expected
    assert captions(third) == []


def test_a_segment_holds_only_the_cues_that_overlap_it() -> None:
    packing = packager()
    packing.add_spans(spans(2))
    packing.add_track(1, track("en", 1, 1.0, 2.0))
    packing.add_track(2, track("en", 2, 6.0, 7.0))  # starts exactly at the second segment's start
    first, second = packing.close_due(through_s=12.0, processed_s=12.0)
    assert [c[0] for c in captions(first)] == ["1"]
    assert [c[0] for c in captions(second)] == ["2"]


def test_a_late_cue_lands_in_the_next_segment_at_its_own_time() -> None:
    packing = packager()
    packing.add_spans(spans(3))
    (first,) = packing.close_due(through_s=6.0, processed_s=6.0)
    packing.add_track(4, track("en", 1, 2.0, 4.0, "Decided late."))
    second, third = packing.close_due(through_s=18.0, processed_s=18.0)
    assert captions(first) == []
    assert captions(second) == [("4", "00:00:02.000", "00:00:04.000", "Decided late.")]
    assert captions(third) == []  # carried once


def test_a_cue_already_carried_does_not_come_back_in_later_segments() -> None:
    packing = packager()
    packing.add_spans(spans(1))
    packing.add_track(1, track("en", 1, 1.0, 2.0))
    packing.close_due(through_s=6.0, processed_s=6.0)
    packing.add_spans(spans(1, first_sn=1))
    (second,) = packing.close_due(through_s=12.0, processed_s=12.0)
    assert captions(second) == []


def test_a_segment_never_closes_twice() -> None:
    packing = packager()
    packing.add_spans(spans(2))
    closed = packing.close_due(through_s=12.0, processed_s=12.0)
    packing.add_spans(spans(3))  # the source lists them again
    assert [s.sn for s in closed] == [0, 1]
    assert [s.sn for s in packing.open_spans] == [2]
    assert [s.sn for s in packing.close_due(through_s=30.0, processed_s=30.0)] == [2]


def test_after_a_restart_spans_at_or_before_the_last_closed_are_ignored() -> None:
    packing = packager(last_closed_sn=5)
    packing.add_spans(spans(8))
    assert [s.sn for s in packing.open_spans] == [6, 7]
    assert [s.sn for s in packing.close_due(through_s=48.0, processed_s=48.0)] == [6, 7]


def test_a_retraction_makes_no_cue() -> None:
    packing = packager()
    packing.add_spans(spans(1))
    packing.add_track(1, track("en", 1, 1.0, 2.0, " \n\t "))
    packing.add_track(2, track("en", 2, 3.0, 4.0, "Real words."))
    (segment,) = packing.close_due(through_s=6.0, processed_s=6.0)
    assert [(c[0], c[3]) for c in captions(segment)] == [("2", "Real words.")]


def test_every_language_is_rendered_and_others_are_ignored() -> None:
    packing = packager("en", "fr")
    packing.add_spans(spans(1))
    packing.add_track(1, track("en", 1, 1.0, 2.0, "Hello."))
    packing.add_track(2, track("fr", 1, 1.0, 2.0, "Bonjour.", source="mt"))
    packing.add_track(3, track("de", 1, 1.0, 2.0, "Hallo."))
    (segment,) = packing.close_due(through_s=6.0, processed_s=6.0)
    assert set(segment.bodies) == {"en", "fr"}
    assert [c[3] for c in captions(segment, "en")] == ["Hello."]
    assert [c[3] for c in captions(segment, "fr")] == ["(machine translation) Bonjour."]


def test_a_language_with_nothing_said_gets_a_file_without_cues() -> None:
    packing = packager("en", "es")
    packing.add_spans(spans(1))
    packing.add_track(1, track("en", 1, 1.0, 2.0))
    (segment,) = packing.close_due(through_s=6.0, processed_s=6.0)
    assert segment.bodies["es"].decode().startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:90000,LOCAL:00:00:00.000")
    assert captions(segment, "es") == []


def test_overlapping_finals_are_laid_out_without_overlap_as_in_the_export() -> None:
    packing = packager()
    packing.add_spans(spans(1))
    packing.add_track(1, track("en", 1, 1.0, 3.0))
    packing.add_track(2, track("en", 2, 2.0, 4.0))
    (segment,) = packing.close_due(through_s=6.0, processed_s=6.0)
    times = [(c[1], c[2]) for c in captions(segment)]
    assert times == [("00:00:01.000", "00:00:03.000"), ("00:00:03.000", "00:00:04.000")]


def test_fixed_segmentation_numbers_slices_of_stream_time_from_zero() -> None:
    fixed = FixedSegmentation(6.0)
    assert fixed.spans_through(-1.0) == [SegmentSpan(0, 0.0, 6.0)]
    assert fixed.spans_through(13.0) == [SegmentSpan(1, 6.0, 6.0), SegmentSpan(2, 12.0, 6.0)]
    assert fixed.spans_through(17.9) == []


def test_fixed_segmentation_resumes_after_what_was_published() -> None:
    fixed = FixedSegmentation(6.0)
    fixed.resume_after(5)
    assert fixed.spans_through(30.0) == []
    assert fixed.spans_through(36.0) == [SegmentSpan(6, 36.0, 6.0)]
    fixed.resume_after(None)
    fixed.resume_after(2)  # never goes back
    assert fixed.spans_through(42.0) == [SegmentSpan(7, 42.0, 6.0)]


@pytest.mark.parametrize("segment_s", [0.0, -6.0])
def test_fixed_segmentation_refuses_a_length_that_is_not_positive(segment_s: float) -> None:
    with pytest.raises(ValueError):
        FixedSegmentation(segment_s)
