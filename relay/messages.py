"""Typed messages passed between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:  # only annotations: an edge, which has no audio, never loads numpy
    import numpy as np


SAMPLE_RATE_HZ = 16_000


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Mono float32 samples at SAMPLE_RATE_HZ, starting at `start_s` in stream time.

    `pts_tick`: the source's presentation time of the first sample, in MPEG-TS ticks (90 kHz,
    modulo 2**33), or None when the source gives no timestamps.
    """

    samples: np.ndarray
    start_s: float
    pts_tick: int | None = None

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
    """Audio of one stretch of speech, handed from the segmenter to the transcriber.

    `final`: the speaker stopped (or the buffer hit its cap); the text decoded from it is
    committed. `settled`: the audio already ends in silence, so it is probably what the
    final will hold; the transcriber decodes it at final quality and keeps the result.
    `speech_start_s`/`speech_end_s` bound the detected speech, without the padding.
    """

    id: str
    samples: np.ndarray
    start_s: float
    speech_start_s: float
    speech_end_s: float
    final: bool
    settled: bool = False

    @property
    def end_s(self) -> float:
        return self.start_s + len(self.samples) / SAMPLE_RATE_HZ

    @property
    def key(self) -> tuple[str, int]:
        """Identifies this exact audio: same id and same length means same samples."""
        return (self.id, len(self.samples))


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
    mt_ms: float | None = None  # time spent translating this final
    speaker: str = ""  # who had the floor when this was said (set by the operator; "" unknown)

    @property
    def is_final(self) -> bool:
        return self.kind == "final"
