"""Apertium engine against the real Debian packages: one long-running pipeline per direction."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.translation import apertium
from relay.translation.apertium import ApertiumTranslator, decode, discover_modes, encode
from relay.translation.types import EngineSpec, EngineUnavailable, TranslationTimeout

pytestmark = pytest.mark.skipif(not apertium.apertium_installed(), reason="apertium not installed")


def mode(direction: str) -> EngineSpec:
    return next(spec for spec in discover_modes() if spec.direction == direction)


@pytest.fixture
def en_es() -> Iterator[ApertiumTranslator]:
    translator = ApertiumTranslator(mode("en-es"))
    yield translator
    translator.close()


def test_installed_modes_cover_the_four_direct_directions() -> None:
    directions = {spec.direction for spec in discover_modes()}
    assert {"en-es", "es-en", "fr-es", "es-fr"} <= directions


def test_translates_english_to_spanish(en_es: ApertiumTranslator) -> None:
    assert en_es.translate("Good morning, my friends.") == "Buenos días, mis amigos."


def test_one_pipeline_serves_many_calls(en_es: ApertiumTranslator) -> None:
    en_es.translate("Hello.")
    pids = en_es.pids
    en_es.translate("Good bye.")
    assert en_es.pids == pids


def test_a_call_takes_milliseconds_once_running(en_es: ApertiumTranslator) -> None:
    en_es.translate("Hello.")
    started = time.perf_counter()
    for _ in range(10):
        en_es.translate("Please enter the conference pin number.")
    assert (time.perf_counter() - started) / 10 < 0.05


def test_special_characters_survive(en_es: ApertiumTranslator) -> None:
    text = "Tags <b> [x] ^9$ @b / c \\ d {e} ~f #g *h"
    out = en_es.translate(text)
    for token in ["<b>", "[x]", "^9$", "@b", "/", "\\", "{e}", "~f", "#g", "*h"]:
        assert token in out


def test_nul_and_newlines_in_input_are_blanks(en_es: ApertiumTranslator) -> None:
    assert en_es.translate("Good\0morning\nfriends") == en_es.translate("Good morning friends")


def test_unknown_words_carry_no_star_mark(en_es: ApertiumTranslator) -> None:
    out = en_es.translate("I have xyzzyq dogs")
    assert "xyzzyq" in out and "*" not in out


def test_empty_text_translates_to_empty(en_es: ApertiumTranslator) -> None:
    assert en_es.translate(" \n ") == ""


def test_long_input_does_not_deadlock(en_es: ApertiumTranslator) -> None:
    text = "The conference will start in five minutes, please take your seats. " * 30
    assert len(text) > 2000
    out = en_es.translate(text)
    assert out.count("conferencia") == 30


def test_killed_pipeline_restarts_on_next_call(en_es: ApertiumTranslator) -> None:
    en_es.translate("Hello.")
    old = en_es.pids
    os.kill(old[len(old) // 2], signal.SIGKILL)
    assert en_es.translate("Good morning, my friends.") == "Buenos días, mis amigos."
    assert not set(en_es.pids) & set(old)


def test_concurrent_callers_get_their_own_answers(en_es: ApertiumTranslator) -> None:
    sentences = [f"I have {n} dogs and {n} cats." for n in range(2, 10)]
    expected = {s: en_es.translate(s) for s in sentences}
    got: dict[str, str] = {}

    def work(sentence: str) -> None:
        for _ in range(5):
            got[sentence] = en_es.translate(sentence)

    threads = [threading.Thread(target=work, args=(s,)) for s in sentences]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert got == expected


def test_timeout_raises_and_stops_the_pipeline() -> None:
    translator = ApertiumTranslator(mode("en-es"), timeout_s=0.001)
    with pytest.raises(TranslationTimeout):
        translator.translate("Hello. " * 300)
    assert translator.pids == []


def test_close_is_idempotent(en_es: ApertiumTranslator) -> None:
    en_es.translate("Hello.")
    en_es.close()
    en_es.close()
    assert en_es.pids == []


def test_missing_apertium_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = mode("en-es")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineUnavailable, match="apt-get install apertium"):
        ApertiumTranslator(spec)


def test_missing_apertium_means_no_modes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert discover_modes() == []


def test_stream_encoding_escapes_reserved_characters() -> None:
    assert encode("a<b>[c]") == b"a\\<b\\>\\[c\\][]\0"


def test_stream_decoding_drops_blanks_and_marks() -> None:
    assert decode(b"Hola @mundo \\[1\\] *gato[]", source_text="hello") == "Hola mundo [1] gato"
