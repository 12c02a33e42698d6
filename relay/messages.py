"""Typed messages passed between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping

import numpy as np

SAMPLE_RATE_HZ = 16_000


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Mono float32 samples at SAMPLE_RATE_HZ, starting at `start_s` in stream time."""

    samples: np.ndarray
    start_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + len(self.samples) / SAMPLE_RATE_HZ


class SourceState(str, Enum):
    """What the audio source is doing, reported to the pipeline."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """A change of source state, e.g. a dropped livestream being reconnected."""

    state: SourceState
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Utterance:
    """Audio of one stretch of speech handed to the transcriber.

    `final` is True when the speaker has stopped (or the buffer hit its cap):
    the text decoded from it is committed and never changes.
    """

    id: str
    samples: np.ndarray
    start_s: float
    final: bool

    @property
    def end_s(self) -> float:
        return self.start_s + len(self.samples) / SAMPLE_RATE_HZ


@dataclass(frozen=True, slots=True)
class Caption:
    """A caption as published: partial (may be replaced by the same id) or final."""

    kind: str  # "partial" | "final"
    id: str
    lang: str
    text: str
    start: float
    end: float
    wall: float
    channel: str = "floor"
    translations: Mapping[str, str] = field(default_factory=dict)
    mt: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.kind == "final"
