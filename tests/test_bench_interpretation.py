"""bench.interpretation_scoring: chrF, length, finals per channel utterance, words on silent booths."""

from __future__ import annotations

from typing import Any

import pytest

from bench.interpretation_scoring import (
    Utterance, assign_to_utterances, channel_delays, channel_utterances, chrf_folded, dropout_window, length_ratio,
    load_event, reference_text, silent_booth_words, track_delays, track_texts,
)


def _final(channel: str, start: float, end: float, text: str = "un deux trois", arrival: float = 0.0,
           **extra: Any) -> dict[str, Any]:
    return {"type": "final", "channel": channel, "start": start, "end": end, "text": text, "arrival": arrival, **extra}


def test_chrf_folds_accents_on_both_sides() -> None:
    assert chrf_folded("La conférence débutera à midi", "La conference debutera a midi") == 100.0
    assert chrf_folded("La conference debutera a midi", "La conférence débutera à midi") == 100.0
    assert chrf_folded("Something else entirely", "La conférence débutera à midi") < 30.0


def test_chrf_is_of_one_document_whatever_the_caption_cuts() -> None:
    reference = "Press one to enter a number. Please try again."
    cut_elsewhere = " ".join(["Press one to enter", "a number. Please try", "again."])
    assert chrf_folded(cut_elsewhere, reference) == 100.0


def test_length_ratio_counts_characters_and_sees_doubling() -> None:
    reference = "Please  try again."
    assert length_ratio("Please try again.", reference) == 1.0
    assert length_ratio("Please try again. Please try again.", reference) == pytest.approx(2.06, abs=0.01)
    assert length_ratio("", reference) == 0.0
    assert length_ratio("anything", "") is None


def test_track_texts_are_the_languages_track_in_seq_order_each_once() -> None:
    messages = [
        {"type": "track", "lang": "fr", "seq": 5, "text": "deux"},
        {"type": "track", "lang": "en", "seq": 4, "text": "two"},
        {"type": "final", "lang": "fr", "seq": 3, "text": "pas une piste"},
        {"type": "track", "lang": "fr", "seq": 2, "text": "un"},
        {"type": "track", "lang": "fr", "seq": 5, "text": "deux"},  # replayed after a reconnect
    ]
    assert track_texts(messages, "fr") == ["un", "deux"]
    assert track_texts(messages, "es") == []


def test_finals_go_to_the_utterance_of_their_own_channel_they_overlap_most() -> None:
    utterances = [Utterance("floor", 0, 0.0, 4.0), Utterance("floor", 1, 5.0, 9.0),
                  Utterance("booth-fr", 0, 2.0, 6.5, "interpretation")]
    late_floor = _final("floor", 3.5, 8.0)  # mostly in floor 1
    booth = _final("booth-fr", 2.2, 6.4)  # overlaps floor 0 and 1 in time, but is the booth's
    got = assign_to_utterances(utterances, [late_floor, booth])
    assert got[0] == [late_floor]  # touches it only: its words reached the viewer then
    assert got[1] == [late_floor]
    assert got[2] == [booth]


def test_an_utterance_without_a_caption_of_its_channel_gets_none() -> None:
    utterances = [Utterance("floor", 0, 0.0, 4.0), Utterance("booth-en", 0, 2.0, 6.0, "interpretation")]
    got = assign_to_utterances(utterances, [_final("floor", 0.5, 3.9)])
    assert got[1] == []


def test_final_delay_runs_from_the_end_of_speech_at_the_socket() -> None:
    utterances = [Utterance("floor", 0, 0.0, 4.0), Utterance("booth-es", 0, 2.0, 6.0, "interpretation"),
                  Utterance("booth-es", 1, 7.0, 9.0, "relay")]
    spans = [(0.3, 3.5), (2.4, 5.8), (7.1, 8.8)]
    zero = 1000.0
    captions = [_final("floor", 0.3, 3.5, arrival=1004.5), _final("booth-es", 2.4, 5.8, arrival=1008.8),
                {**_final("floor", 0.3, 1.0, arrival=1001.4), "type": "partial"}]
    delays = channel_delays(utterances, spans, captions, zero)
    assert delays["floor"]["final_delay_s"]["p50"] == pytest.approx(1.0)
    assert delays["floor"]["first_partial_delay_s"]["p50"] == pytest.approx(1.1)
    assert delays["booth-es"]["final_delay_s"]["p50"] == pytest.approx(3.0)
    assert delays["booth-es (relay)"]["without_final"] == [1]
    assert delays["booth-es"]["partials_of_channel"] == 0


def test_words_on_silent_booths_count_finals_mostly_outside_the_booths_speech() -> None:
    utterances = [Utterance("booth-en", 0, 2.0, 6.0, "interpretation"), Utterance("booth-es", 0, 2.0, 6.0, "relay")]
    finals = [
        _final("booth-en", 2.0, 6.5, "inside the interpretation"),  # runs a little past: not silent
        _final("booth-en", 10.0, 12.0, "captioned on silence"),
        _final("booth-es", 3.0, 5.0, "el piso retransmitido"),  # the relay is speech of the booth
        _final("floor", 20.0, 22.0, "the floor is not a booth"),
    ]
    assert silent_booth_words(utterances, finals, ["booth-en", "booth-es", "booth-fr"]) == {
        "booth-en": 3, "booth-es": 0, "booth-fr": 0}


def test_track_delay_is_per_source_from_the_floor_sentence_it_serves() -> None:
    utterances = [Utterance("floor", 0, 0.0, 4.0), Utterance("floor", 1, 5.0, 9.0)]
    spans = {0: (0.2, 3.8), 1: (5.1, 8.6)}
    messages = [
        _final("floor", 0.2, 3.8, id="u1", arrival=104.8),
        _final("floor", 5.1, 8.6, id="u2", arrival=109.6),
        {"type": "track", "lang": "fr", "source": "interpretation", "covers": ["u1"], "arrival": 106.8},
        {"type": "track", "lang": "fr", "source": "mt", "covers": ["u2"], "arrival": 112.6},
        {"type": "track", "lang": "en", "source": "floor", "covers": ["u1", "u2"], "arrival": 110.0},
    ]
    delays = track_delays(utterances, spans, messages, zero=100.0)
    assert delays["fr"]["interpretation"]["p50"] == pytest.approx(3.0)
    assert delays["fr"]["mt"]["p50"] == pytest.approx(4.0)
    assert delays["en"]["floor"]["n"] == 2
    assert delays["es"] == {}


def test_the_events_channels_references_and_dropout_loop_together() -> None:
    event = load_event()
    one = channel_utterances(event, None, 1, float(event["seconds"]))
    two = channel_utterances(event, None, 2, 100.0)
    assert len(two) == 2 * len(one)
    assert {u.channel for u in one} == {"floor", "booth-en", "booth-fr", "booth-es"}
    assert two[len(one)].start == pytest.approx(one[0].start + 100.0)
    assert any(u.kind == "relay" for u in one if u.channel == f"booth-{event['relay_booth']}")
    first_minute = channel_utterances(event, 60.0, 1, 60.0)
    assert first_minute and all(u.end <= 60.0 for u in first_minute)
    reference = reference_text(event, "fr", None, 1)
    assert reference.startswith(event["utterances"][0]["refs"]["fr"])
    assert reference_text(event, "fr", None, 2) == f"{reference} {reference}"
    windows = dropout_window(event, 2, 100.0)
    assert len(windows) == 2 * len(event["dropout"]["utterances"])
    assert windows[len(windows) // 2][0] == pytest.approx(windows[0][0] + 100.0)


def test_a_booth_utterance_cut_by_the_smoke_window_still_counts_as_speaking() -> None:
    event = load_event()
    cut_at = event["booths"]["en"][2]["end"] - 1.0  # inside booth-en's third utterance
    scored = channel_utterances(event, cut_at, 1, cut_at)
    speaking = channel_utterances(event, cut_at, 1, cut_at, begun=True)
    final = _final("booth-en", cut_at - 2.0, cut_at, "words of the cut utterance")
    assert silent_booth_words(scored, [final], ["booth-en"]) == {"booth-en": 5}
    assert silent_booth_words(speaking, [final], ["booth-en"]) == {"booth-en": 0}
