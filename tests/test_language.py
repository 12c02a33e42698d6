"""Language choice from Whisper's detection probabilities."""

from relay.language import choose_language


def test_confident_detection_wins_over_previous_language():
    assert choose_language({"fr": 0.9, "en": 0.05}, previous="en") == ("fr", 0.9)


def test_unsure_detection_keeps_a_plausible_previous_language():
    assert choose_language({"pt": 0.4, "es": 0.35, "en": 0.1}, previous="es") == ("es", 0.35)


def test_unsure_detection_ignores_an_implausible_previous_language():
    assert choose_language({"pt": 0.4, "es": 0.35, "en": 0.1}, previous="en") == ("pt", 0.4)


def test_first_utterance_takes_the_top_language():
    assert choose_language({"de": 0.3, "nl": 0.29}, previous=None) == ("de", 0.3)
