"""Shared types for machine translation: results, errors and the engine interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

ARGOS = "argos"
APERTIUM = "apertium"
# Label stored in a caption's `mt` map when no route exists and the text is passed through.
UNTRANSLATED = "untranslated"


class TranslationError(RuntimeError):
    """A translation engine failed to translate a text."""


class EngineUnavailable(TranslationError):
    """An engine cannot be used on this machine (not installed, bad package)."""


class TranslationTimeout(TranslationError):
    """An engine did not answer within its per-call timeout."""


@dataclass(frozen=True, slots=True)
class Translation:
    """A text in the target language and the engine label that produced it.

    `engine` is "argos" or "apertium" for a direct route, the legs joined by "+"
    for a pivot ("apertium+argos"), and None when `untranslated` (text passed through).
    """

    text: str
    engine: str | None
    untranslated: bool = False


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """An installed engine for one direction, not yet loaded."""

    engine: str
    source: str
    target: str
    location: str

    @property
    def direction(self) -> str:
        return f"{self.source}-{self.target}"


class Engine(Protocol):
    """A loaded engine translating one direction; `translate` must be thread-safe."""

    spec: EngineSpec

    def translate(self, text: str) -> str:
        """Translate `text` from spec.source to spec.target."""
        ...

    def close(self) -> None:
        """Release processes and models; safe to call twice."""
        ...
