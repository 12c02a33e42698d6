"""CaptionTranslator: a final caption in en, fr and es with per-language engine labels."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from relay.translation import UNTRANSLATED, CaptionTranslator, apertium

pytestmark = pytest.mark.skipif(not apertium.apertium_installed(), reason="apertium not installed")


@pytest.fixture(scope="module")
def captions() -> Iterator[CaptionTranslator]:
    translator = CaptionTranslator()
    yield translator
    translator.close()


def test_warm_up_makes_the_first_caption_fast(captions: CaptionTranslator) -> None:
    captions.warm_up()
    started = time.perf_counter()
    captions.translate("Good evening, my friends.", "fr")
    assert time.perf_counter() - started < 0.1


def test_source_entry_is_the_text_itself(captions: CaptionTranslator) -> None:
    result = captions.translate("Good morning, my friends.", "en")
    assert result.translations["en"] == "Good morning, my friends."
    assert "en" not in result.mt


def test_every_caption_language_is_filled(captions: CaptionTranslator) -> None:
    result = captions.translate("Good morning, my friends.", "en")
    assert list(result.translations) == ["en", "fr", "es"]
    assert result.translations["es"] == "Buenos días, mis amigos."


def test_machine_translated_languages_carry_engine_labels(captions: CaptionTranslator) -> None:
    result = captions.translate("Ha dejado la conferencia.", "es")
    assert result.mt == {"en": "apertium", "fr": "apertium"}


def test_pivoted_language_is_labelled_with_both_legs(captions: CaptionTranslator) -> None:
    result = captions.translate("Bonjour à tous.", "fr")
    assert result.mt == {"en": "apertium+apertium", "es": "apertium"}


def test_source_outside_caption_languages_is_passed_through(captions: CaptionTranslator) -> None:
    result = captions.translate("おはようございます", "ja")
    assert result.translations == {lang: "おはようございます" for lang in ("en", "fr", "es")}
    assert result.mt == {lang: UNTRANSLATED for lang in ("en", "fr", "es")}


def test_whisper_style_tags_are_accepted(captions: CaptionTranslator) -> None:
    result = captions.translate("Hello.", "EN")
    assert result.translations["en"] == "Hello." and set(result.mt) == {"fr", "es"}


async def test_async_translation_matches_sync(captions: CaptionTranslator) -> None:
    expected = captions.translate("Please take your seats.", "en")
    got = await asyncio.wait_for(captions.translate_async("Please take your seats.", "en"), timeout=30)
    assert got == expected


async def test_concurrent_captions_do_not_mix(captions: CaptionTranslator) -> None:
    texts = [f"I have {n} dogs." for n in range(2, 8)]
    results = await asyncio.wait_for(
        asyncio.gather(*(captions.translate_async(text, "en") for text in texts)), timeout=30
    )
    assert [r.translations["en"] for r in results] == texts
    expected = [captions.translate(text, "en").translations["es"] for text in texts]
    assert [r.translations["es"] for r in results] == expected
