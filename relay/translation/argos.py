"""Argos engine: run an installed package's CTranslate2 model with its SentencePiece model."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from relay.translation.packages import SENTENCEPIECE, ArgosPackage, PackageError, load_package
from relay.translation.sentences import split_sentences
from relay.translation.types import EngineSpec, EngineUnavailable

_LOGGER = logging.getLogger(__name__)

# Decoding settings as Argos Translate uses them.
_BEAM_SIZE = 4
_LENGTH_PENALTY = 0.2
_MAX_BATCH_SIZE = 32


class ArgosTranslator:
    """Translate one direction with an Argos package (ctranslate2 + sentencepiece, no torch)."""

    def __init__(self, spec: EngineSpec, *, cpu_threads: int = 2) -> None:
        try:
            import ctranslate2
            import sentencepiece
        except ImportError as err:
            raise EngineUnavailable(f"Argos packages need ctranslate2 and sentencepiece: {err}") from err
        try:
            self.package: ArgosPackage = load_package(Path(spec.location))
        except PackageError as err:
            raise EngineUnavailable(str(err)) from err
        self.spec = spec
        self._lock = threading.Lock()
        try:
            self._tokenizer = sentencepiece.SentencePieceProcessor(
                model_file=str(self.package.path / SENTENCEPIECE)
            )
            self._translator = ctranslate2.Translator(
                str(self.package.path / "model"), device="cpu", inter_threads=1, intra_threads=cpu_threads
            )
        except (RuntimeError, OSError, ValueError) as err:
            raise EngineUnavailable(f"cannot load Argos package {self.package.path}: {err}") from err
        _LOGGER.info("Loaded Argos package %s from %s", spec.direction, self.package.path)

    def translate(self, text: str) -> str:
        """Translate `text` sentence by sentence in one batch."""
        sentences = split_sentences(text)
        if not sentences:
            return ""
        tokens = [self._tokenizer.encode(sentence, out_type=str) for sentence in sentences]
        prefix = [[self.package.target_prefix]] * len(tokens) if self.package.target_prefix else None
        longest = max(len(pieces) for pieces in tokens)
        with self._lock:
            results = self._translator.translate_batch(
                tokens,
                target_prefix=prefix,
                beam_size=_BEAM_SIZE,
                length_penalty=_LENGTH_PENALTY,
                max_batch_size=_MAX_BATCH_SIZE,
                replace_unknowns=True,
                # Bounds a runaway decode (no end-of-sentence) to about 3x the input.
                max_decoding_length=3 * longest + 16,
            )
        pieces = [self._strip_prefix(result.hypotheses[0]) for result in results]
        return " ".join(self._tokenizer.decode(p) for p in pieces).strip()

    def close(self) -> None:
        """Release the model; safe to call twice."""
        with self._lock:
            self._translator.unload_model()

    def _strip_prefix(self, pieces: list[str]) -> list[str]:
        """Drop the target-language token that multilingual packages emit first."""
        if self.package.target_prefix and pieces[:1] == [self.package.target_prefix]:
            return pieces[1:]
        return pieces
