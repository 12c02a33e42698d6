"""Hypothesis strategies shared by the property tests: caption text that is hard to lay out or escape."""

from __future__ import annotations

from hypothesis import strategies as st

# Pieces that have broken subtitle writers: cue syntax, markup, entities, every kind of line
# break and space, sentence and clause ends, abbreviations, and words too long for a line.
TRICKY = (
    "-->", "--", ">", "<", "&", "&amp;", "&lt;", "<b>", "</i>", "<script>alert(1)</script>",
    "<v Roger>", "<00:00:01.000>", "WEBVTT", "NOTE", "STYLE", "1", "42",
    "00:00:01,000 --> 00:00:02,000", "00:01.000", "\n", "\n\n", "\r\n", "\r", "\t", " ", "  ",
    "\u00a0", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\u3000", "\ufeff", "\u200b",
    ".", ",", ";", ":", "!", "?", "…", "—", "«", "»", "¿", "¡", "Mr.", "e.g.", "Dr.", "U.S.",
    "3.5", "x" * 43, "y" * 90, "é", "ß", "İ", "ﬁ", "😀", "中文。", "مرحبا",
)  # fmt: skip

WORD = st.from_regex(r"[A-Za-zÀ-ÿ0-9'’-]{1,14}[.,;:!?…]?", fullmatch=True)


def caption_text(max_pieces: int = 40) -> st.SearchStrategy[str]:
    """Any text a caption might carry: words, tricky pieces and arbitrary Unicode, spaced or not."""
    piece = st.one_of(WORD, st.sampled_from(TRICKY), st.text(max_size=12))
    pieces = st.lists(piece, max_size=max_pieces)
    return st.one_of(pieces.map(" ".join), pieces.map("".join))


def speech(max_words: int = 80) -> st.SearchStrategy[str]:
    """Speech-like text: words with punctuation, separated by single spaces."""
    return st.lists(WORD, min_size=1, max_size=max_words).map(" ".join)
