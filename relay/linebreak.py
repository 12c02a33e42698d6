"""Caption line breaking: caption-sized pieces of a transcript, and display lines of a caption."""

from __future__ import annotations

from collections.abc import Iterator

from relay.translation.sentences import split_sentences

MAX_LINE_CHARS = 42
MAX_LINES = 2
_CLAUSE_END = (",", ";", ":", "—", "–")
_SENTENCE_END = (".", "!", "?", "…")


def wrap_lines(text: str, max_chars: int = MAX_LINE_CHARS) -> list[str]:
    """Break `text` into the fewest lines of ≤ max_chars, balanced, never splitting a word.

    A word longer than max_chars gets a line of its own. Among layouts with the fewest
    lines, the one with the most even line lengths wins, preferring breaks after punctuation.
    """
    words = text.split()
    if not words:
        return []
    # best[i]: (lines, cost, start of last line) for the first i words.
    best: list[tuple[int, float, int]] = [(0, 0.0, 0)] + [(len(words) + 1, 0.0, 0)] * len(words)
    for end in range(1, len(words) + 1):
        width = -1
        for start in range(end - 1, -1, -1):
            width += len(words[start]) + 1
            if width > max_chars and start < end - 1:
                break
            lines, cost = best[start][0] + 1, best[start][1] + _line_cost(words, end, width, max_chars)
            if (lines, cost) < best[end][:2]:
                best[end] = (lines, cost, start)
    return _unwind(words, best)


def line_count(text: str, max_chars: int = MAX_LINE_CHARS) -> int:
    """Return how many lines greedy wrapping needs (the minimum for word wrapping)."""
    lines, width = 0, max_chars + 1
    for word in text.split():
        if width + 1 + len(word) <= max_chars:
            width += 1 + len(word)
        else:
            lines, width = lines + 1, len(word)
    return lines


def fits(text: str, max_chars: int = MAX_LINE_CHARS, max_lines: int = MAX_LINES) -> bool:
    """True when `text` wraps into at most max_lines lines."""
    return line_count(text, max_chars) <= max_lines


def split_captions(text: str, max_chars: int = MAX_LINE_CHARS, max_lines: int = MAX_LINES) -> list[str]:
    """Split a transcript into caption-sized pieces, at sentence boundaries where possible.

    Consecutive short sentences share a caption while they fit; a sentence too long for one
    caption is cut at a clause boundary (comma, semicolon...) in its second half, else between
    words, and its pieces are not merged with other sentences.
    """
    pieces: list[str] = []
    last_is_sentence = False
    for sentence, joiner in _sentences(text):
        chunks = _split_sentence(sentence, max_chars, max_lines)
        whole = len(chunks) == 1
        merged = f"{pieces[-1]}{joiner}{chunks[0]}" if whole and last_is_sentence else ""
        if merged and fits(merged, max_chars, max_lines):
            pieces[-1] = merged
            continue
        pieces.extend(chunks)
        last_is_sentence = whole
    return pieces


def _sentences(text: str) -> Iterator[tuple[str, str]]:
    """Yield each sentence with what joins it to the one before: a space, or nothing.

    Chinese and Japanese sentences follow "。" with no space; merging them must not add one.
    """
    position = 0
    for sentence in split_sentences(text):
        start = text.find(sentence, position)
        yield sentence, (" " if start > position else "")
        position = start + len(sentence)


def _split_sentence(sentence: str, max_chars: int, max_lines: int) -> list[str]:
    """Cut one sentence into pieces that each fit a caption."""
    words = sentence.split()
    chunks: list[str] = []
    while words:
        count = 1
        while count < len(words) and fits(" ".join(words[: count + 1]), max_chars, max_lines):
            count += 1
        if count < len(words):
            count = _clause_cut(words[:count]) or count
        chunks.append(" ".join(words[:count]))
        words = words[count:]
    return chunks


def _clause_cut(words: list[str]) -> int:
    """Return the word count up to the last clause end in the second half of `words`, or 0."""
    for count in range(len(words) - 1, len(words) // 2 - 1, -1):
        if count > 0 and words[count - 1].endswith(_CLAUSE_END + _SENTENCE_END):
            return count
    return 0


def _line_cost(words: list[str], end: int, width: int, max_chars: int) -> float:
    """Squared slack of a line ending before words[end], less a bonus for ending on punctuation."""
    slack = max(0, max_chars - width)
    ends_clause = end < len(words) and words[end - 1].endswith(_CLAUSE_END + _SENTENCE_END)
    bonus = (max_chars // 2) ** 2 if ends_clause else 0
    return float(slack * slack - bonus)


def _unwind(words: list[str], best: list[tuple[int, float, int]]) -> list[str]:
    """Rebuild the lines from the back-pointers of the layout search."""
    lines: list[str] = []
    end = len(words)
    while end > 0:
        start = best[end][2]
        lines.append(" ".join(words[start:end]))
        end = start
    return lines[::-1]
