"""Rule-based sentence splitting used before Argos translation and caption cutting."""

from __future__ import annotations

from relay.translation.sentences import split_sentences


def test_splits_at_terminal_punctuation() -> None:
    assert split_sentences("Hello world. How are you? Fine!") == ["Hello world.", "How are you?", "Fine!"]


def test_keeps_abbreviations_and_initials() -> None:
    assert split_sentences("Mr. Smith met J. K. Rowling today. Then he left.") == [
        "Mr. Smith met J. K. Rowling today.",
        "Then he left.",
    ]


def test_keeps_decimals_and_lowercase_continuations() -> None:
    assert split_sentences("It costs 3.5 euros, e.g. less than before.") == [
        "It costs 3.5 euros, e.g. less than before."
    ]


def test_spanish_opening_marks_start_a_sentence() -> None:
    assert split_sentences("Es un test. ¿Verdad? ¡Sí!") == ["Es un test.", "¿Verdad?", "¡Sí!"]


def test_closing_quote_stays_with_its_sentence() -> None:
    assert split_sentences('He said "stop." Then he left.') == ['He said "stop."', "Then he left."]


def test_japanese_full_stops_split_without_spaces() -> None:
    assert split_sentences("今日は。元気です。") == ["今日は。", "元気です。"]


def test_text_without_punctuation_is_one_sentence() -> None:
    assert split_sentences("  so we agreed on that  ") == ["so we agreed on that"]
