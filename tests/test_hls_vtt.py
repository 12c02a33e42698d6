"""One subtitle segment's WebVTT file: read back by webvtt-py, its cues placed on the presentation clock."""

from __future__ import annotations

import html
import io

import pytest
import webvtt

from relay.export import Cue, CueLayout, vtt_timestamp
from relay.hls.pts import TICK_HZ, TICK_WRAP, PtsMap
from relay.hls.vtt import segment_body

NAMES = [
    "Zoë Ångström-Núñez",
    'Mary "Molly" O\'Brien',
    "<script>alert(1)</script>",
    "Ben & Jerry",
    "مريم العلي",
    "דָּנִיאֵל כֹּהֵן",
    "Dr <b>Bold</b> > Everyone",
]


def pts_map(*samples: tuple[float, int]) -> PtsMap:
    pts = PtsMap()
    for stream_s, tick in samples:
        pts.observe(stream_s, tick)
    return pts


def cues(*finals: tuple[int, str, float, float, str]) -> list[Cue]:
    """Cues as the packager lays them out: (seq, text, start, end, speaker)."""
    layout = CueLayout()
    return [layout.place(seq, text, start, end, speaker) for seq, text, start, end, speaker in finals]


def parsed(body: bytes) -> webvtt.WebVTT:
    return webvtt.from_buffer(io.StringIO(body.decode("utf-8")), strict=True)


def times_ms(caption: webvtt.Caption) -> tuple[int, int]:
    return caption.start_time.in_milliseconds(), caption.end_time.in_milliseconds()


def local_seconds(timestamp: str) -> float:
    hours, minutes, seconds = timestamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def timestamp_map(body: bytes) -> tuple[int, float]:
    """(MPEGTS, LOCAL in seconds) of the segment's X-TIMESTAMP-MAP header line."""
    line = body.decode().split("\n")[1]
    mpegts, local = line.removeprefix("X-TIMESTAMP-MAP=").split(",")
    return int(mpegts.removeprefix("MPEGTS:")), local_seconds(local.removeprefix("LOCAL:"))


def test_segment_parses_with_its_cues_in_order() -> None:
    body = segment_body(6.0, cues((3, "Good morning.", 6.5, 8.0, ""), (4, "Welcome all.", 8.5, 11.0, "")), pts_map())
    captions = parsed(body).captions
    assert [c.text for c in captions] == ["Good morning.", "Welcome all."]
    assert [times_ms(c) for c in captions] == [(6_500, 8_000), (8_500, 11_000)]


def test_cue_identifiers_are_the_seq() -> None:
    body = segment_body(0.0, cues((17, "One.", 1.0, 2.0, ""), (18, "Two.", 2.0, 3.0, "")), pts_map((0.0, 0)))
    assert [c.identifier for c in parsed(body).captions] == ["17", "18"]


def test_header_maps_the_segment_start_onto_its_presentation_tick() -> None:
    pts = pts_map((0.0, 7_200_000), (30.0, 7_200_000 + 35 * TICK_HZ))
    body = segment_body(36.0, [], pts)
    assert body.decode().split("\n")[:2] == ["WEBVTT", f"X-TIMESTAMP-MAP=MPEGTS:{pts.tick_at(36.0)},LOCAL:00:00:36.000"]
    assert pts.tick_at(36.0) == 7_200_000 + 41 * TICK_HZ
    assert parsed(body).metadata == [f"X-TIMESTAMP-MAP=MPEGTS:{pts.tick_at(36.0)},LOCAL:00:00:36.000"]


def test_a_segment_begun_before_the_first_sample_is_local_time_zero() -> None:
    pts = pts_map((0.0, 900_000))
    assert timestamp_map(segment_body(-1.5, [], pts)) == (900_000, 0.0)


def test_without_jumps_cues_keep_their_stream_times() -> None:
    pts = pts_map((0.0, 123_456))
    body = segment_body(12.0, cues((1, "Hello.", 12.25, 14.5, "")), pts)
    (caption,) = parsed(body).captions
    assert (caption.start, caption.end) == ("00:00:12.250", "00:00:14.500")


@pytest.mark.parametrize("jump_s", [5.0, -2.5])
def test_a_cue_after_a_jump_in_the_segment_plays_where_its_words_are_heard(jump_s: float) -> None:
    # 4 s into the segment the source's timestamps jump by `jump_s` (audio skipped, or an overlap).
    pts = pts_map((0.0, 1_000_000), (10.0, 1_000_000 + round((10.0 + jump_s) * TICK_HZ)))
    body = segment_body(6.0, cues((1, "Before.", 7.0, 8.0, ""), (2, "After.", 11.0, 12.5, "")), pts)
    mpegts, local = timestamp_map(body)
    before, after = parsed(body).captions
    for caption, stream_s in ((before, 7.0), (after, 11.0)):
        heard = mpegts + round((times_ms(caption)[0] / 1000 - local) * TICK_HZ)
        assert heard == pts.tick_at(stream_s)
    assert times_ms(before) == (7_000, 8_000)
    assert times_ms(after) == (round((11.0 + jump_s) * 1000), round((12.5 + jump_s) * 1000))


def test_a_cue_past_the_wrap_plays_where_its_words_are_heard() -> None:
    pts = pts_map((0.0, TICK_WRAP - 3 * TICK_HZ))  # the clock passes 2**33 at stream 3 s
    body = segment_body(0.0, cues((1, "Across the wrap.", 4.0, 5.0, "")), pts)
    mpegts, local = timestamp_map(body)
    (caption,) = parsed(body).captions
    heard = (mpegts + round((times_ms(caption)[0] / 1000 - local) * TICK_HZ)) % TICK_WRAP
    assert heard == pts.tick_at(4.0) == TICK_HZ
    assert times_ms(caption) == (4_000, 5_000)


@pytest.mark.parametrize("name", NAMES)
def test_speaker_names_come_back_intact_from_the_voice_span(name: str) -> None:
    body = segment_body(0.0, cues((1, "Thank you, chair.", 1.0, 2.0, name)), pts_map((0.0, 0)))
    (caption,) = parsed(body).captions
    assert caption.raw_text.startswith("<v ")
    assert html.unescape(caption.voice) == name
    assert caption.text == "Thank you, chair."


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "Ben & Jerry", "Dr <b>Bold</b> > Everyone"])
def test_speaker_names_are_escaped_in_the_file(name: str) -> None:
    text = segment_body(0.0, cues((1, "Hi.", 1.0, 2.0, name)), pts_map()).decode()
    voice_line = text.split("\n")[5]
    assert voice_line == f"<v {html.escape(name, quote=False)}>Hi."
    assert "<script>" not in text and "<b>" not in text


def test_spoken_markup_and_arrows_stay_text_in_one_cue() -> None:
    spoken = "A --> B, then <i>C</i> & D"
    body = segment_body(0.0, cues((1, spoken, 1.0, 2.0, ""), (2, "Next.", 2.0, 3.0, "")), pts_map())
    assert body.decode().split("\n")[5] == "A --&gt; B, then &lt;i&gt;C&lt;/i&gt; &amp; D"
    first, second = parsed(body).captions
    assert html.unescape(first.text) == spoken
    assert first.text == first.raw_text  # no cue tags were found in it
    assert (second.identifier, second.text) == ("2", "Next.")


def test_a_cue_starting_with_an_arrow_cannot_end_its_cue() -> None:
    body = segment_body(0.0, cues((5, "--> 00:00:09.000 is not a time", 1.0, 2.0, "")), pts_map())
    (caption,) = parsed(body).captions
    assert (caption.identifier, caption.start, caption.end) == ("5", "00:00:01.000", "00:00:02.000")
    assert html.unescape(caption.text) == "--> 00:00:09.000 is not a time"


def test_long_text_is_wrapped_into_two_lines() -> None:
    words = "the committee will now hear the report of the working group on interpretation"
    (caption,) = parsed(segment_body(0.0, cues((1, words, 0.0, 4.0, "")), pts_map())).captions
    assert len(caption.lines) == 2 and " ".join(caption.lines) == words


def test_local_times_are_written_as_export_writes_them() -> None:
    assert vtt_timestamp(3_723_004) == "01:02:03.004"
    body = segment_body(3723.0, cues((1, "Late.", 3723.004, 3724.0, "")), pts_map())
    assert "01:02:03.004 --> 01:02:04.000" in body.decode()
