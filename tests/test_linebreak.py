"""Caption line breaking: caption-sized pieces and display lines."""

from __future__ import annotations

from relay.linebreak import MAX_LINE_CHARS, fits, line_count, split_captions, wrap_lines

LONG_TRANSCRIPT = (
    "Good morning everyone and welcome to the quarterly review. "
    "Before we start, please make sure your microphone is muted unless you are speaking, "
    "because the recording picks up every keyboard and every cough in the room. "
    "Thank you. "
    "Our first speaker today is the head of operations, who will walk us through the numbers."
)


def test_short_caption_stays_on_one_line() -> None:
    assert wrap_lines("Thank you very much.") == ["Thank you very much."]


def test_lines_never_exceed_the_limit() -> None:
    for line in wrap_lines(LONG_TRANSCRIPT):
        assert len(line) <= MAX_LINE_CHARS


def test_wrapping_never_splits_or_drops_a_word() -> None:
    assert " ".join(wrap_lines(LONG_TRANSCRIPT)).split() == LONG_TRANSCRIPT.split()


def test_two_line_caption_is_balanced() -> None:
    first, second = wrap_lines("Please enter your agent number followed by the pound key.")
    assert abs(len(first) - len(second)) <= 12


def test_line_break_prefers_punctuation() -> None:
    assert wrap_lines("Pour prolonger la conférence, appuyez sur 5.") == [
        "Pour prolonger la conférence,",
        "appuyez sur 5.",
    ]


def test_overlong_word_gets_its_own_line() -> None:
    word = "x" * 50
    assert wrap_lines(f"see {word} here") == ["see", word, "here"]


def test_empty_text_has_no_lines() -> None:
    assert wrap_lines("   ") == []
    assert split_captions("") == []


def test_wrapping_uses_the_fewest_lines() -> None:
    assert len(wrap_lines(LONG_TRANSCRIPT)) == line_count(LONG_TRANSCRIPT)


def test_every_caption_fits_two_lines() -> None:
    for caption in split_captions(LONG_TRANSCRIPT):
        assert fits(caption)
        assert len(wrap_lines(caption)) <= 2


def test_captions_keep_every_word_in_order() -> None:
    assert " ".join(split_captions(LONG_TRANSCRIPT)).split() == LONG_TRANSCRIPT.split()


def test_short_sentences_share_a_caption() -> None:
    assert split_captions("Yes. I agree. Let us vote.") == ["Yes. I agree. Let us vote."]


def test_captions_start_at_sentence_boundaries_when_sentences_fit() -> None:
    text = "Good morning everyone and welcome to the review. Our first speaker is the head of operations."
    assert split_captions(text) == [
        "Good morning everyone and welcome to the review.",
        "Our first speaker is the head of operations.",
    ]


def test_long_sentence_is_cut_at_a_clause_boundary() -> None:
    captions = split_captions(
        "Before we start, please mute your phone unless you speak, "
        "because the recording picks up every keyboard and every cough in the room."
    )
    assert captions[0] == "Before we start, please mute your phone unless you speak,"


def test_pieces_of_a_long_sentence_are_not_merged_with_the_next_sentence() -> None:
    captions = split_captions(LONG_TRANSCRIPT)
    assert "Thank you." in captions


def test_chinese_sentences_merge_without_an_added_space() -> None:
    assert split_captions("会议开始。请大家安静。") == ["会议开始。请大家安静。"]
    assert split_captions("Yes.  I agree.") == ["Yes. I agree."]
