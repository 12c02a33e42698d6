"""Per-utterance language choice: trust a clear detection, otherwise lean on the last speaker."""

from __future__ import annotations

from typing import Mapping

CONFIDENT_PROB = 0.5
KEEP_PREVIOUS_PROB = 0.2


def choose_language(probs: Mapping[str, float], previous: str | None) -> tuple[str, float]:
    """Pick a language from Whisper's detection probabilities.

    Short or muffled utterances give flat distributions; the floor rarely switches
    language mid-turn, so an unsure detection keeps the previous utterance's language
    when that language is still plausible.
    """
    top = max(probs, key=probs.__getitem__)
    if probs[top] >= CONFIDENT_PROB or previous is None:
        return top, probs[top]
    if probs.get(previous, 0.0) >= KEEP_PREVIOUS_PROB:
        return previous, probs[previous]
    return top, probs[top]
