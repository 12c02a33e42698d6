"""One Whisper model and the worker threads that run it: audio in, text out."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

from relay.language import choose_language
from relay.messages import SAMPLE_RATE_HZ

_LOGGER = logging.getLogger(__name__)

_MAX_DECODER_TOKENS = 448  # Whisper's text context
_MAX_PROMPT_TOKENS = 96
_PROMPT_BUDGET_TOKENS = 223  # Whisper's prompt (before <|startoftranscript|>): half its 448-token context
_MAX_DEFAULT_WORKERS = 4  # an event has four channels; more copies of a big model cost memory
_SILENT_RMS = 1e-4  # -80 dBFS: a muted feed; Whisper would invent text for it


@dataclass(frozen=True, slots=True)
class Context:
    """What was said just before: steers language choice and spelling of the next caption."""

    lang: str | None
    text: str = ""
    only: tuple[str, ...] | None = None  # languages allowed (one: decode in it); None: any


@dataclass(frozen=True, slots=True)
class DecodeSettings:
    """How the model decodes; from the command line."""

    language: str | None = None  # None: detect per utterance
    final_beam_size: int = 5
    partial_beam_size: int = 1
    compute_type: str = "int8"
    # Decodes run side by side: on 2 cores, one decode on one thread is as fast as on two (base's
    # matrices are too small to share well) and two side by side double the throughput
    # (docs/benchmarks.md, "Decode workers"). Each worker holds a copy of the model.
    workers: int = 0  # 0: one per core, at most _MAX_DEFAULT_WORKERS
    cpu_threads: int = 0  # threads of one decode; 0: the cores shared out among the workers
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    fallback_temperature: float = 0.4
    tokens_per_second: float = 10.0  # cap on output length: a looping decoder stops here
    min_window_s: float = 15.0  # encoder input: the utterance padded to at least this...
    partial_min_window_s: float = 8.0  # ...for a partial (provisional, replaced by its final): cheaper
    window_headroom_s: float = 2.0  # ...and to this much past its end (up to Whisper's 30 s)
    # Per language, words the decoder should expect (the glossary's terms): faster-whisper's
    # `hotwords`, put in the prompt ahead of the previous caption.
    hotwords: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one decode produced, with the scores used to reject non-speech."""

    text: str
    lang: str
    lang_prob: float
    no_speech_prob: float
    avg_logprob: float
    seconds: float


class WhisperEngine:
    """Loads a model once; decodes up to `workers` utterances at a time on its own threads."""

    def __init__(self, model_dir: Path, settings: DecodeSettings) -> None:
        self.settings = settings
        cores = len(os.sched_getaffinity(0)) or 1  # the cores this process may run on
        self.workers = settings.workers or min(cores, _MAX_DEFAULT_WORKERS)
        threads = settings.cpu_threads or max(1, cores // self.workers)
        started = time.monotonic()
        self._model = WhisperModel(
            str(model_dir), device="cpu", compute_type=settings.compute_type,
            cpu_threads=threads, num_workers=self.workers,
        )
        _LOGGER.info("Loaded Whisper model %s in %.1f s (%d decode workers, %d threads each)",
                     model_dir, time.monotonic() - started, self.workers, threads)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="whisper")
        self._tokenizers: dict[str, Tokenizer] = {}
        self._hotword_lengths: dict[str, int] = {}
        self._hotwords = {lang: words for lang, words in settings.hotwords if words}  # not rebuilt per decode

    @property
    def multilingual(self) -> bool:
        return self._model.model.is_multilingual

    async def decode(
        self, samples: np.ndarray, *, final: bool, context: Context | None = None
    ) -> Decoded:
        """Decode on a worker thread; the event loop never runs the model."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self.decode_blocking, samples, final, context
        )

    def warm_up(self) -> None:
        """One throwaway decode per worker, side by side: each model replica's first call pays
        one-off allocation costs. (Quiet noise: digital silence is never decoded at all.)"""
        noise = np.random.default_rng(0).standard_normal(SAMPLE_RATE_HZ).astype(np.float32) * 0.01
        jobs = [self._executor.submit(self.decode_blocking, noise, False) for _ in range(self.workers)]
        for job in jobs:
            job.result()

    def close(self) -> None:
        """Stop the workers after the decodes in progress, if any."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def decode_blocking(
        self, samples: np.ndarray, final: bool, context: Context | None = None
    ) -> Decoded:
        """Encode once, pick the language from that encoding, then generate text."""
        started = time.monotonic()
        if not samples.size or float(np.sqrt(np.mean(samples**2))) < _SILENT_RMS:
            return Decoded("", context.lang if context and context.lang else "en", 0.0, 1.0, 0.0, 0.0)
        model = self._model
        features = self._window(model.feature_extractor(samples), final)
        encoded = model.encode(features)
        lang, lang_prob = self._language(encoded, context)
        tokenizer = self._tokenizer(lang)
        prompt = self._prompt(tokenizer, context if context and context.lang == lang else None, lang)
        duration_s = len(samples) / SAMPLE_RATE_HZ
        beam = self.settings.final_beam_size if final else self.settings.partial_beam_size
        text, no_speech, logprob = self._generate(encoded, prompt, tokenizer, duration_s, beam, 0.0)
        if final and self._needs_fallback(text, logprob, no_speech):
            retry = self._generate(
                encoded, prompt, tokenizer, duration_s, 1, self.settings.fallback_temperature
            )
            if retry[2] > logprob and _compression_ratio(retry[0]) <= self.settings.compression_ratio_threshold:
                text, no_speech, logprob = retry
        if self._is_non_speech(text, logprob, no_speech):
            text = ""
        return Decoded(text, lang, lang_prob, no_speech, logprob, time.monotonic() - started)

    def _window(self, features: np.ndarray, final: bool = True) -> np.ndarray:
        """Pad the features to a shorter window than Whisper's 30 s when the utterance allows.

        CTranslate2 encodes any length; the encoder costs about linearly in the window, and
        with >= 8 s of window the decoder reads short utterances as well as with 30 s (see
        docs/benchmarks.md), so 15 s halves the cost of every decode.
        """
        frames_per_s = SAMPLE_RATE_HZ // self._model.feature_extractor.hop_length
        floor_s = self.settings.min_window_s if final else self.settings.partial_min_window_s
        wanted = max(floor_s, features.shape[-1] / frames_per_s + self.settings.window_headroom_s)
        frames = min(int(wanted * frames_per_s), self._model.feature_extractor.nb_max_frames)
        return pad_or_trim(features, frames + frames % 2)

    def _language(self, encoded, context: Context | None) -> tuple[str, float]:
        only = context.only if context is not None else None
        if only and len(only) == 1:  # a booth: its language is known, never detected
            return only[0], 1.0
        if self.settings.language:
            return self.settings.language, 1.0
        if not self.multilingual:
            return "en", 1.0
        ranked = self._model.model.detect_language(encoded)[0]
        return choose_language(allowed_probs(ranked, only), context.lang if context else None)

    def _tokenizer(self, lang: str) -> Tokenizer:
        if lang not in self._tokenizers:
            self._tokenizers[lang] = Tokenizer(
                self._model.hf_tokenizer, self.multilingual, task="transcribe", language=lang
            )
        return self._tokenizers[lang]

    def _prompt(self, tokenizer: Tokenizer, context: Context | None, lang: str) -> list[int]:
        """Start-of-transcript tokens, led by the language's hotwords and the previous caption
        when it is the same language."""
        hotwords = self._hotwords.get(lang)
        room = _MAX_PROMPT_TOKENS
        if hotwords:  # hotwords and the previous caption share Whisper's half of the context
            room = max(0, min(room, _PROMPT_BUDGET_TOKENS - self._hotword_tokens(tokenizer, lang, hotwords)))
        previous: list[int] = []
        if context is not None and context.text and room:
            previous = tokenizer.encode(" " + context.text.strip())[-room:]
        return self._model.get_prompt(tokenizer, previous, without_timestamps=True, hotwords=hotwords)

    def _hotword_tokens(self, tokenizer: Tokenizer, lang: str, hotwords: str) -> int:
        """How many tokens `lang`'s hotwords take (faster-whisper keeps at most the budget; said once)."""
        if lang not in self._hotword_lengths:
            length = len(tokenizer.encode(" " + hotwords.strip()))
            if length > _PROMPT_BUDGET_TOKENS:
                _LOGGER.warning("The glossary's %s terms take %d tokens; Whisper's prompt holds %d: only the "
                                "first terms lead it", lang, length, _PROMPT_BUDGET_TOKENS)
            self._hotword_lengths[lang] = min(length, _PROMPT_BUDGET_TOKENS)
        return self._hotword_lengths[lang]

    def _generate(
        self,
        encoded,
        prompt: list[int],
        tokenizer: Tokenizer,
        duration_s: float,
        beam: int,
        temperature: float,
    ) -> tuple[str, float, float]:
        max_new = int(8 + duration_s * self.settings.tokens_per_second)
        sampling = {"sampling_temperature": temperature, "sampling_topk": 0} if temperature else {}
        result = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=beam,
            max_length=min(len(prompt) + max_new, _MAX_DECODER_TOKENS),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=list(get_suppressed_tokens(tokenizer, [-1])),
            **sampling,
        )[0]
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        return tokenizer.decode(tokens).strip(), result.no_speech_prob, avg_logprob

    def _needs_fallback(self, text: str, logprob: float, no_speech: float) -> bool:
        s = self.settings
        if self._is_non_speech(text, logprob, no_speech):
            return False
        return _compression_ratio(text) > s.compression_ratio_threshold or logprob < s.log_prob_threshold

    def _is_non_speech(self, text: str, logprob: float, no_speech: float) -> bool:
        """Whisper's silence rule, widened: a likely-silent window that loops is not speech."""
        s = self.settings
        if no_speech <= s.no_speech_threshold:
            return False
        return logprob < s.log_prob_threshold or _compression_ratio(text) > s.compression_ratio_threshold


def allowed_probs(ranked: list[tuple[str, float]], only: tuple[str, ...] | None) -> dict[str, float]:
    """Detection probabilities by language code, restricted to `only` (renormalised) if given."""
    probs = {token[2:-2]: prob for token, prob in ranked}
    if not only:
        return probs
    kept = {lang: probs.get(lang, 0.0) for lang in only}
    total = sum(kept.values())
    return {lang: p / total for lang, p in kept.items()} if total > 0 else {only[0]: 1.0}


def _compression_ratio(text: str) -> float:
    """Whisper's repetition signal: looping text compresses too well."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0
