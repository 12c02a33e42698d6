"""Property tests of line breaking and of cutting finals into captions (Hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.caption_stage import split_final
from relay.linebreak import MAX_LINE_CHARS, MAX_LINES, fits, line_count, split_captions, wrap_lines
from relay.messages import Caption
from tests.strategies import caption_text, speech

# Bounded for the shared CI machine; no deadline: a slow example on a busy machine is not a bug.
SETTINGS = settings(max_examples=150, deadline=None)
WIDTHS = st.integers(min_value=1, max_value=80)


def words(text: str) -> list[str]:
    return text.split()


def assert_pieces_tile(pieces: list[str], text: str) -> None:
    """The pieces, in order, are the text with whitespace collapsed: nothing lost, moved or added.

    Consecutive pieces were separated by one space or by nothing (Chinese "。" takes no space).
    """
    flat = " ".join(text.split())
    position = 0
    for piece in pieces:
        assert piece and piece == " ".join(piece.split())
        if position and flat.startswith(" ", position):
            position += 1
        assert flat.startswith(piece, position), (piece, flat[position:])
        position += len(piece)
    assert position == len(flat)


@SETTINGS
@given(caption_text(), WIDTHS)
def test_wrapping_keeps_every_word_in_order(text: str, width: int) -> None:
    lines = wrap_lines(text, width)
    assert words(" ".join(lines)) == words(text)
    assert all(line and line == " ".join(line.split()) for line in lines)


@SETTINGS
@given(caption_text(), WIDTHS)
def test_a_line_is_never_too_long_unless_it_is_one_long_word(text: str, width: int) -> None:
    for line in wrap_lines(text, width):
        assert len(line) <= width or len(line.split()) == 1


@SETTINGS
@given(caption_text(), WIDTHS)
def test_wrapping_uses_the_fewest_lines(text: str, width: int) -> None:
    assert len(wrap_lines(text, width)) == line_count(text, width)


@SETTINGS
@given(caption_text())
def test_fits_means_at_most_two_display_lines(text: str) -> None:
    assert fits(text) == (len(wrap_lines(text)) <= MAX_LINES)


@SETTINGS
@given(st.one_of(caption_text(), speech()))
def test_captions_are_the_text_in_order_with_nothing_lost_or_added(text: str) -> None:
    assert_pieces_tile(split_captions(text), text)


@SETTINGS
@given(st.one_of(caption_text(), speech()))
def test_every_caption_fits_two_lines_of_42_unless_it_is_one_long_word(text: str) -> None:
    for piece in split_captions(text):
        lines = wrap_lines(piece)
        assert fits(piece) or len(piece.split()) == 1
        assert len(lines) <= MAX_LINES or len(piece.split()) == 1
        assert all(len(line) <= MAX_LINE_CHARS or " " not in line for line in lines)


@SETTINGS
@given(st.one_of(caption_text(max_pieces=12), speech(max_words=14)))
def test_text_that_fits_stays_one_caption(text: str) -> None:
    normalized = " ".join(text.split())
    if fits(normalized) and normalized:
        assert split_captions(text) == [normalized]


@SETTINGS
@given(st.one_of(caption_text(), speech()))
def test_a_caption_split_again_stays_whole(text: str) -> None:
    for piece in split_captions(text):
        assert split_captions(piece) == [piece]


TIMES = st.floats(min_value=0.0, max_value=36_000.0, allow_nan=False)


@SETTINGS
@given(st.one_of(caption_text(), speech()), TIMES, st.floats(min_value=0.0, max_value=600.0))
def test_split_finals_tile_the_span_in_order_with_the_id_family(text: str, start: float, length: float) -> None:
    caption = Caption("final", "u7", "en", text, start, start + length, 1.0)
    pieces = split_final(caption)
    if not text.split():
        assert pieces == [caption]  # nothing to cut: passed on whole
    # (a final that fits is passed on as it came, spacing and all)
    assert_pieces_tile([" ".join(piece.text.split()) for piece in pieces if piece.text.split()], text)
    assert pieces[0].id == "u7" and [p.id for p in pieces[1:]] == [f"u7.{n}" for n in range(2, len(pieces) + 1)]
    assert abs(pieces[0].start - caption.start) <= 0.0005 and abs(pieces[-1].end - caption.end) <= 0.0005
    assert all(piece.start <= piece.end for piece in pieces)
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:]))
    assert all((p.kind, p.lang, p.wall) == ("final", "en", 1.0) for p in pieces)
