"""Edge cases of the track composer, each a small hand-timed event."""

from __future__ import annotations

import pytest

from relay.messages import Caption
from relay.tracks import Speech, TrackComposer
from tests.test_tracks import Scenario, Timing, delayed, run, track

PUBLISH_S = Timing().latency_s


def read(shown, lang: str) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.source, c.text, c.covers) for c in track(shown, lang)]


def test_booth_down_gives_mt_at_once_and_is_used_again_when_back() -> None:
    shown = Scenario(
        floor=[("fr", 10, 14), ("fr", 20, 24)],
        booths={"en": [(11.5, 15.0, "first, said while down"), (21.8, 25.5, "second")]},
        outages=[("booth-en", 12.0, 18.0)], langs=("en",),
    ).run()
    assert read(shown, "en") == [("mt", "MT:en0", ("f0",)), ("interpretation", "second", ("f1",))]
    mt_wall = next(w for w, c in shown if c.source == "mt")
    assert mt_wall == 14 + PUBLISH_S  # no waiting: served when the floor final came


def test_booth_beyond_the_bound_gets_mt_and_its_late_final_is_dropped() -> None:
    shown = Scenario(floor=[("fr", 10, 14)], booths={"en": [(19.5, 23, "too late")]},
                     langs=("en",)).run()
    assert read(shown, "en") == [("mt", "MT:en0", ("f0",))]


def test_bound_fires_when_the_booth_reports_nothing() -> None:
    shown = Scenario(floor=[("fr", 10, 14)], booths={"en": []}, stalled=("booth-en",),
                     langs=("en",)).run()
    ((wall, caption),) = [(w, c) for w, c in shown if c.lang == "en"]
    assert caption.source == "mt" and wall == pytest.approx(14 + PUBLISH_S + 4.0)


def test_silent_booth_is_known_silent_before_the_bound() -> None:
    shown = Scenario(floor=[("fr", 10, 14)], booths={"en": []}, langs=("en",)).run()
    ((wall, caption),) = [(w, c) for w, c in shown if c.lang == "en"]
    assert caption.source == "mt" and wall < 14 + PUBLISH_S + 4.0


def test_one_booth_final_spanning_two_floor_finals_serves_both() -> None:
    shown = Scenario(floor=[("fr", 10, 13), ("fr", 13.5, 16)],
                     booths={"en": [(11.5, 18.5, "both at once")]}, langs=("en",)).run()
    assert read(shown, "en") == [("interpretation", "both at once", ("f0", "f1"))]


def test_booth_split_into_two_finals_for_one_passage_shows_both() -> None:
    shown = Scenario(floor=[("fr", 10, 22)],
                     booths={"en": [(12, 16, "part one"), (16.8, 24, "part two")]},
                     langs=("en",)).run()
    assert read(shown, "en") == [("interpretation", "part one", ("f0",)),
                                 ("interpretation", "part two", ("f0",))]


def test_unexpected_floor_language_goes_to_every_booth_or_mt() -> None:
    shown = Scenario(floor=[("it", 10, 14)],
                     booths={"en": [(11.8, 15.5, "en from it")], "es": [(12, 15.8, "es from it")],
                             "fr": []}).run()
    assert read(shown, "en") == [("interpretation", "en from it", ("f0",))]
    assert read(shown, "es") == [("interpretation", "es from it", ("f0",))]
    assert read(shown, "fr") == [("mt", "MT:fr0", ("f0",))]
    assert all(c.floor_lang == "it" for _, c in shown)


def test_language_without_a_booth_gets_mt_as_soon_as_the_floor_final_comes() -> None:
    shown = Scenario(floor=[("fr", 10, 14), ("en", 16, 18)], booths={"en": []},
                     langs=("en", "de")).run()
    assert read(shown, "de") == [("mt", "MT:de0", ("f0",)), ("mt", "MT:de1", ("f1",))]
    assert [w for w, c in shown if c.lang == "de"] == [14 + PUBLISH_S, 18 + PUBLISH_S]


def test_floor_in_the_track_language_is_shown_once_despite_a_relaying_booth() -> None:
    shown = Scenario(floor=[("fr", 10, 14), ("es", 16, 20)],
                     booths={"es": [(11.7, 15.2, "es from fr"), (16, 20, "relayed floor")]}).run()
    assert read(shown, "es") == [("interpretation", "es from fr", ("f0",)),
                                 ("floor", "es1", ("f1",))]


def test_booth_words_during_floor_silence_after_an_interpreted_passage_are_kept() -> None:
    shown = Scenario(floor=[("fr", 10, 14)],
                     booths={"en": [(11.5, 15, "interpreted"), (30, 32, "interpreter aside")]},
                     langs=("en",)).run()
    assert read(shown, "en") == [("interpretation", "interpreted", ("f0",)),
                                 ("interpretation", "interpreter aside", ("f0",))]


def test_booth_words_during_floor_silence_after_mt_are_dropped() -> None:
    shown = Scenario(floor=[("fr", 10, 14)], booths={"en": [(30, 32, "late or aside")]},
                     langs=("en",)).run()
    assert read(shown, "en") == [("mt", "MT:en0", ("f0",))]


def test_booth_words_before_any_floor_passage_are_dropped() -> None:
    shown = Scenario(floor=[("fr", 10, 14)],
                     booths={"en": [(2, 4, "mic check"), (11.5, 15, "interpreted")]},
                     langs=("en",)).run()
    assert read(shown, "en") == [("interpretation", "interpreted", ("f0",))]


def test_booth_that_speaks_but_gives_no_text_falls_back_to_mt() -> None:
    scenario = Scenario(floor=[("fr", 10, 14)], booths={"en": []}, langs=("en",))
    script = scenario.script()
    script.add(11.5, Speech("booth-en", 11.5, True))
    script.add(15.3, Speech("booth-en", 15.0, False))
    shown = run(script, TrackComposer(("en",), {"booth-en": "en"}))
    assert read(shown, "en") == [("mt", "MT:en0", ("f0",))]


def test_viewers_read_passages_in_floor_order_while_a_booth_is_late() -> None:
    shown = Scenario(floor=[("fr", 10, 14), ("en", 15, 16)],
                     booths={"en": [(12.5, 20, "slow interpreter")]}, langs=("en",)).run()
    assert read(shown, "en") == [("interpretation", "slow interpreter", ("f0",)),
                                 ("floor", "en1", ("f1",))]


@pytest.mark.parametrize("booth_delay_s", [0.0, 1.5])
def test_spill_of_the_previous_interpretation_does_not_hide_a_dropout(booth_delay_s) -> None:
    # timings of floor 2-3 and the Spanish booth in event.json, with booth 3 dropped
    scenario = Scenario(floor=[("fr", 10.902, 21.415), ("fr", 26.505, 28.267)],
                        booths={"en": [(13.417, 28.005, "long first")]}, langs=("en",))
    script = delayed(scenario.script(), {"floor": 0.0, "booth-en": booth_delay_s})
    shown = run(script, TrackComposer(("en",), {"booth-en": "en"}))
    assert read(shown, "en") == [("interpretation", "long first", ("f0",)),
                                 ("mt", "MT:en1", ("f1",))]


def test_unknown_channel_is_a_clear_error() -> None:
    composer = TrackComposer(("en",), {"booth-en": "en"})
    with pytest.raises(ValueError, match="unknown channel 'booth-xx'"):
        composer.feed(Speech("booth-xx", 1.0, True), 0.0)
    with pytest.raises(ValueError, match="unknown channel"):
        composer.feed(Caption("final", "x", "fr", "t", 0, 1, 0, channel="booth-xx"), 0.0)


def test_two_booths_for_one_language_are_refused() -> None:
    with pytest.raises(ValueError, match="one booth per language"):
        TrackComposer(("en",), {"booth-a": "en", "booth-b": "en"})


def test_partials_are_ignored() -> None:
    composer = TrackComposer(("en",), {})
    assert composer.feed(Caption("partial", "p", "fr", "t", 0, 1, 0), 5.0) == []


def test_booth_final_before_its_floor_final_waits_for_it() -> None:
    # a 20 s floor passage: the booth's first sentence is final long before the floor's
    shown = Scenario(floor=[("fr", 2, 5), ("fr", 10, 30)],
                     booths={"en": [(12, 18, "part one"), (18.8, 33, "part two")]},
                     langs=("en",)).run()
    assert read(shown, "en") == [("mt", "MT:en0", ("f0",)),
                                 ("interpretation", "part one", ("f1",)),
                                 ("interpretation", "part two", ("f1",))]


def test_original_track_shows_each_floor_final_when_it_comes() -> None:
    shown = Scenario(floor=[("fr", 10, 14), ("it", 15, 16)], booths={"en": []}).run()
    original = [(w, c.text, c.floor_lang) for w, c in shown if c.lang == "original"]
    assert original == [(14 + PUBLISH_S, "fr0", "fr"), (16 + PUBLISH_S, "it1", "it")]


def test_passage_whose_booth_text_went_elsewhere_gets_mt_without_waiting() -> None:
    # found by hypothesis: the booth chains f0 into f1, but its final arrives before f1's floor
    # final, so it serves f0 only; with its processed position stalled, f1 and f2 must not
    # wait for booth_wait_max_s
    shown = Scenario(floor=[("en", 7, 9), ("es", 9.5, 16.5), ("es", 17.5, 18.5)],
                     booths={"fr": [(9.0, 16.4375, "f0 and f1")]}, stalled=("booth-fr",),
                     langs=("fr",)).run()
    assert read(shown, "fr") == [("interpretation", "f0 and f1", ("f0",)),
                                 ("mt", "MT:fr1", ("f1",)), ("mt", "MT:fr2", ("f2",))]
    published = {"f1": 16.5 + PUBLISH_S, "f2": 18.5 + PUBLISH_S}
    for wall, c in shown:
        if c.source == "mt":
            assert wall - published[c.covers[0]] <= 4.0
