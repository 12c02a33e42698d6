"""Routing between en, fr and es on real Apertium: direct, pivot, untranslated, language of output."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from relay.translation import apertium
from relay.translation.router import Router, normalize_lang
from relay.translation.types import APERTIUM, ARGOS, EngineSpec
from tests.argos_fixture import parallel_rows

needs_apertium = pytest.mark.skipif(not apertium.apertium_installed(), reason="apertium not installed")

STOP_WORDS = {
    "en": {"the", "of", "and", "to", "is", "you", "your", "for", "please", "this", "are", "has", "have",
           "in", "on", "not", "be", "with", "that", "a", "an", "or", "it", "will", "by", "at", "from"},
    "fr": {"le", "la", "les", "de", "des", "du", "et", "est", "vous", "votre", "pour", "une", "un", "ce",
           "cette", "sur", "dans", "pas", "au", "aux", "que", "qui", "avec", "par", "sont", "ou", "a"},
    "es": {"el", "la", "los", "las", "de", "del", "y", "es", "su", "para", "una", "un", "por", "favor",
           "que", "en", "con", "no", "esta", "este", "al", "se", "son", "o", "usted", "ha", "lo"},
}
DIRECTIONS = ["en-es", "es-en", "fr-es", "es-fr", "en-fr", "fr-en"]


def stop_word_ratio(text: str, lang: str) -> float:
    """Share of the words of `text` that are stop words of `lang`."""
    words = re.findall(r"\w+", text.lower())
    return sum(word in STOP_WORDS[lang] for word in words) / max(1, len(words))


def detected_language(text: str) -> str:
    """The caption language whose stop words cover most of `text`."""
    return max(STOP_WORDS, key=lambda lang: stop_word_ratio(text, lang))


@pytest.fixture(scope="module")
def router() -> Iterator[Router]:
    router = Router.discover()
    yield router
    router.close()


@needs_apertium
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_real_sentences_come_out_in_the_target_language(router: Router, direction: str) -> None:
    source, target = direction.split("-")
    rows = [row for row in parallel_rows() if len(row[source]) > 40][:12]
    output = " ".join(router.translate(row[source], source, target).text for row in rows)
    assert detected_language(output) == target
    assert stop_word_ratio(output, target) > 2 * stop_word_ratio(output, source)


def test_stop_word_check_recognises_the_references() -> None:
    rows = parallel_rows()[:20]
    detected = [detected_language(" ".join(row[lang] for row in rows)) for lang in STOP_WORDS]
    assert detected == ["en", "fr", "es"]


@needs_apertium
@pytest.mark.parametrize("direction", ["en-es", "es-en", "fr-es", "es-fr"])
def test_direct_directions_use_apertium(router: Router, direction: str) -> None:
    route = router.route(*direction.split("-"))
    assert route is not None and (route.label, len(route.steps)) == ("apertium", 1)


@needs_apertium
@pytest.mark.parametrize(("direction", "path"), [("en-fr", "en→es→fr"), ("fr-en", "fr→es→en")])
def test_english_french_pivots_through_spanish(router: Router, direction: str, path: str) -> None:
    route = router.route(*direction.split("-"))
    assert route is not None and (route.label, route.path) == ("apertium+apertium", path)


@needs_apertium
def test_pivot_result_carries_the_joined_label(router: Router) -> None:
    result = router.translate("Good morning, my friends.", "en", "fr")
    assert (result.engine, result.untranslated) == ("apertium+apertium", False)


def test_no_route_passes_text_through_marked_untranslated(router: Router) -> None:
    result = router.translate("おはようございます", "ja", "fr")
    assert (result.text, result.engine, result.untranslated) == ("おはようございます", None, True)


def test_same_language_returns_the_text(router: Router) -> None:
    result = router.translate("Bonjour.", "fr", "FR")
    assert (result.text, result.engine, result.untranslated) == ("Bonjour.", None, False)


def test_language_tags_are_normalised() -> None:
    assert [normalize_lang(code) for code in ("EN", "en-US", "pt_BR", "no")] == ["en", "en", "pt", "nb"]


def test_direct_argos_beats_direct_apertium_without_loading() -> None:
    router = Router([EngineSpec(APERTIUM, "en", "es", "m"), EngineSpec(ARGOS, "en", "es", "p")])
    route = router.route("en", "es")
    assert route is not None and route.label == "argos"


def test_direct_apertium_beats_an_argos_pivot() -> None:
    specs = [
        EngineSpec(APERTIUM, "en", "fr", "m"),
        EngineSpec(ARGOS, "en", "es", "p"),
        EngineSpec(ARGOS, "es", "fr", "p"),
    ]
    route = Router(specs).route("en", "fr")
    assert route is not None and route.label == "apertium"


def test_pivot_with_more_argos_legs_wins() -> None:
    specs = [
        EngineSpec(APERTIUM, "fr", "es", "m"),
        EngineSpec(APERTIUM, "es", "de", "m"),
        EngineSpec(ARGOS, "fr", "en", "p"),
        EngineSpec(ARGOS, "en", "de", "p"),
    ]
    route = Router(specs).route("fr", "de")
    assert route is not None and (route.label, route.path) == ("argos+argos", "fr→en→de")
