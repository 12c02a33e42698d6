"""The real Whisper base model on real clips of each language."""

from __future__ import annotations

import numpy as np
import pytest

from bench.scoring import wer
from relay.modelstore import resolve_model
from relay.whisper_engine import Context, DecodeSettings, WhisperEngine
from tests.conftest import SPEECH_DIR, load_audio

# Measured here on all clips: en 4.3 %, fr 20.4 %, es 10.4 %; bounds leave room for noise.
WER_BOUND = {"en": 0.10, "fr": 0.30, "es": 0.18}


@pytest.fixture(scope="module")
def decoded_clips(base_engine, clips):
    return [(clip, base_engine.decode_blocking(load_audio(SPEECH_DIR / clip["path"]), True)) for clip in clips]


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_word_error_rate_is_bounded(decoded_clips, lang):
    pairs = [(c["text"], d.text) for c, d in decoded_clips if c["lang"] == lang]
    assert pairs
    assert wer([r for r, _ in pairs], [h for _, h in pairs]) <= WER_BOUND[lang]


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_language_is_identified(decoded_clips, lang):
    mine = [d.lang for c, d in decoded_clips if c["lang"] == lang]
    assert sum(got == lang for got in mine) >= 0.95 * len(mine)


def test_digital_silence_gives_no_text(base_engine):
    assert base_engine.decode_blocking(np.zeros(3 * 16000, dtype=np.float32), True).text == ""


def test_noise_and_tones_give_no_text(base_engine):
    noise = np.random.default_rng(0).normal(0, 0.01, 3 * 16000).astype(np.float32)
    tone = (0.3 * np.sin(np.arange(3 * 16000) * 2 * np.pi * 440 / 16000)).astype(np.float32)
    assert base_engine.decode_blocking(noise, True).text == ""
    assert base_engine.decode_blocking(tone, True).text == ""


def test_forced_language_is_used(base_engine):
    audio = load_audio(SPEECH_DIR / "clips" / "en-jfk.flac")
    forced = WhisperEngine.__new__(WhisperEngine)  # same loaded model, other settings
    forced.__dict__.update(base_engine.__dict__)
    forced.settings = DecodeSettings(language="fr")
    assert forced.decode_blocking(audio, True).lang == "fr"


def test_context_of_another_language_does_not_bias_a_clear_detection(base_engine):
    audio = load_audio(SPEECH_DIR / "clips" / "fr-ast-conf-getconfno.flac")
    assert base_engine.decode_blocking(audio, True, Context("en", "Press the pound key.")).lang == "fr"


def test_output_length_is_capped_so_a_loop_cannot_run_away(base_engine):
    audio = load_audio(SPEECH_DIR / "clips" / "en-jfk.flac")[: 2 * 16000]
    text = base_engine.decode_blocking(audio, True).text
    assert len(text.split()) <= 2 * (8 + 2 * base_engine.settings.tokens_per_second)


def test_english_only_model_transcribes_english(clips):
    jfk = next(c for c in clips if c["id"] == "en-jfk")
    engine = WhisperEngine(resolve_model("tiny.en"), DecodeSettings())
    try:
        decoded = engine.decode_blocking(load_audio(SPEECH_DIR / "clips" / "en-jfk.flac"), True)
    finally:
        engine.close()
    assert decoded.lang == "en"
    assert wer([jfk["text"]], [decoded.text]) <= 0.15
