"""`--glossary`: the meeting's terms come out of machine translation exactly as the glossary says."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from relay.glossary import Glossary, GlossaryError, GlossaryRouter
from relay.translation.router import Router
from relay.translation.types import Translation
from tests.test_source_lifecycle import RELAY

GLOSSARY = Path(__file__).resolve().parent.parent / "bench" / "data" / "glossary.csv"

pytestmark = pytest.mark.skipif(not Path("/usr/share/apertium/modes").is_dir(), reason="Apertium is not installed")


@pytest.fixture(scope="module")
def glossary() -> Glossary:
    return Glossary.load(GLOSSARY)


class EchoRouter:
    """An engine that returns its input, lower-casing and marking unknown words as Apertium may."""

    def route(self, source, target):
        return None

    def translate(self, text: str, source: str, target: str) -> Translation:
        return Translation(text.replace("GLOSSTERM", "*glossterm"), "echo")

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("said", "expected"), [
    ("The Security Council met.", "The Conseil de sécurité met."),
    ("THE SECURITY COUNCIL MET.", "THE CONSEIL DE SÉCURITÉ MET."),
    ("Ceasefire now.", "Cessez-le-feu now."),  # a lower-case term at a sentence's start
    ("Two treaties and three treatys.", "Two treaties and three traités."),  # a regular plural only
    ("The treatyist and the pretreaty.", "The treatyist and the pretreaty."),  # never inside a word
    ("Member States and a Member State.", "États Membres and a État Membre."),  # longest term first
    ("Women,   Peace and\tSecurity", "Femmes, paix et sécurité"),  # any spaces between its words
])  # fmt: skip
def test_terms_are_swapped_whole_with_the_speakers_case(glossary, said, expected) -> None:
    assert GlossaryRouter(EchoRouter(), glossary).translate(said, "en", "fr").text == expected


def test_without_a_term_the_text_goes_to_the_engine_untouched(glossary) -> None:
    text = "Nothing here is in the glossary."
    protected, targets = glossary.protect(text, "en", "es")
    assert protected == text and targets == []


@pytest.fixture(scope="module")
def router():
    engines = Router.discover()
    yield engines
    engines.close()


@pytest.mark.parametrize(("source", "target", "text", "term"), [
    ("en", "fr", "Women, Peace and Security is our theme.", "Femmes, paix et sécurité"),
    ("en", "es", "The peacekeeping operation needs funding.", "operación de mantenimiento de la paz"),
    ("fr", "en", "Le Conseil de sécurité se réunira demain.", "Security Council"),
    ("fr", "es", "Les États Membres ont approuvé le budget.", "Estados Miembros"),
    ("es", "en", "La Asamblea General eligió a su presidente.", "General Assembly"),
    ("es", "fr", "Cada Estado Miembro tiene un voto.", "État Membre"),
])  # fmt: skip
def test_apertium_renders_the_glossarys_term_in_every_direction(router, glossary, source, target, text, term) -> None:
    assert term in GlossaryRouter(router, glossary).translate(text, source, target).text


def test_translate_command_follows_the_glossary_and_nothing_changes_without(tmp_path) -> None:
    lines = "The Security Council agreed on a ceasefire.\nWe thank the delegations.\n"
    with_it = subprocess.run([RELAY, "translate", "--from", "en", "--to", "fr", "--glossary", str(GLOSSARY)],
                             input=lines, capture_output=True, text=True, timeout=120)
    without = subprocess.run([RELAY, "translate", "--from", "en", "--to", "fr"], input=lines, capture_output=True,
                             text=True, timeout=120)
    assert with_it.returncode == 0 and without.returncode == 0, with_it.stderr + without.stderr
    glossed, plain = with_it.stdout.splitlines(), without.stdout.splitlines()
    assert "Conseil de sécurité" in glossed[0] and "cessez-le-feu" in glossed[0]
    assert glossed[1] == plain[1]  # no term: the engine's own translation
    assert "GLOSSTERM" not in with_it.stdout.upper()


@pytest.mark.parametrize(("content", "message"), [
    ("", "is empty"),
    ("term,other\nA,B\n", "header of language codes"),
    ("en,fr\nonly English,\n", "no term in two languages"),
])  # fmt: skip
def test_a_bad_glossary_is_one_line_at_start(tmp_path, content, message) -> None:
    bad = tmp_path / "glossary.csv"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(GlossaryError, match=message):
        Glossary.load(bad)
    result = subprocess.run([RELAY, "translate", "--from", "en", "--to", "fr", "--glossary", str(bad)],
                            input="x\n", capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1]


def test_the_relays_translator_uses_the_glossary_of_serve() -> None:
    from relay.runner import load_translator

    translator = load_translator(argparse.Namespace(no_translate=False, glossary=GLOSSARY))
    try:
        result = translator.translate("The General Assembly and the Security Council met.", "en")
    finally:
        translator.close()
    assert "Assemblée générale" in result.translations["fr"] and "Conseil de sécurité" in result.translations["fr"]
    assert "Asamblea General" in result.translations["es"] and "Consejo de Seguridad" in result.translations["es"]


def test_the_glossarys_terms_lead_whispers_prompt_in_their_language_only(meeting_audio, meeting_events) -> None:
    from relay.modelstore import resolve_model
    from relay.whisper_engine import DecodeSettings, WhisperEngine

    hotwords = Glossary.load(GLOSSARY).hotwords()
    engine = WhisperEngine(resolve_model("base"), DecodeSettings(workers=1, hotwords=hotwords))
    try:
        french = engine._tokenizer("fr")
        wanted = french.encode(" " + dict(hotwords)["fr"])
        prompt = engine._prompt(french, None, "fr")
        assert prompt[1:1 + len(wanted)] == wanted  # after <|startofprev|>, before the transcript's start
        english = engine._tokenizer("en")
        assert english.encode(" " + dict(hotwords)["fr"])[:5] != engine._prompt(english, None, "en")[1:6]
        assert "Security Council" in english.decode(engine._prompt(english, None, "en"))
        event = next(e for e in meeting_events if e.get("lang") == "fr")
        clip = meeting_audio[int(event["start"] * 16000):int(event["end"] * 16000)]
        decoded = engine.decode_blocking(clip, True)
    finally:
        engine.close()
    assert decoded.lang == "fr" and len(decoded.text.split()) >= 3  # still transcribes what is said
    assert "Conseil de sécurité" not in decoded.text  # and does not put the terms in its mouth


def test_acronyms_match_only_as_written_and_come_out_as_the_glossary_has_them() -> None:
    terms = Glossary([{"en": "US", "fr": "États-Unis"}, {"en": "WHO", "fr": "OMS"}, {"en": "UNICEF", "fr": "Unicef"}])
    router = GlossaryRouter(EchoRouter(), terms)
    assert router.translate("Help us, the people who came; he uses it.", "en", "fr").text == \
        "Help us, the people who came; he uses it."
    assert router.translate("The US, WHO and UNICEF agreed.", "en", "fr").text == "The États-Unis, OMS and Unicef agreed."


def test_the_first_of_two_rows_for_a_term_wins_every_time() -> None:
    terms = Glossary([{"en": "fund", "fr": "fonds"}, {"en": "Fund", "fr": "Fonds"}])
    assert GlossaryRouter(EchoRouter(), terms).translate("The fund.", "en", "fr").text == "The fonds."


def test_language_codes_in_any_case_and_text_holding_the_placeholder_word(glossary) -> None:
    router = GlossaryRouter(EchoRouter(), glossary)
    assert router.translate("The Security Council met.", "EN", "FR").text == "The Conseil de sécurité met."
    said = "GLOSSTERM0 and the Security Council"  # never turned into a term, nor the text around it
    assert glossary.protect(said, "en", "fr") == (said, [])


def test_hotwords_and_the_previous_caption_share_whispers_prompt(tmp_path) -> None:
    from relay.modelstore import resolve_model
    from relay.whisper_engine import Context, DecodeSettings, WhisperEngine

    many = ", ".join(f"Objetivo número {n} de Desarrollo Sostenible" for n in range(60))  # far over the budget
    engine = WhisperEngine(resolve_model("base"), DecodeSettings(workers=1, hotwords=(("es", many),)))
    try:
        spanish = engine._tokenizer("es")
        context = Context(lang="es", text="Buenos días a todos y bienvenidos a esta reunión del consejo. " * 8)
        prompt = engine._prompt(spanish, context, "es")
    finally:
        engine.close()
    start = prompt.index(spanish.sot)
    assert start - 1 <= 223  # <|startofprev|>, then hotwords and previous text within half the context
