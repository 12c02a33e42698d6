"""Scoring captions against the timed references of ../shared/speech/meeting.json."""

from __future__ import annotations

import json
import re
import statistics
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import jiwer
import numpy as np

SPEECH_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "speech"
NON_SPEECH_KINDS = ("silence", "noise", "music")


def normalise(text: str) -> str:
    """Lower case, accents folded, punctuation dropped: what WER is computed on."""
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w']+|'", " ", folded).split())


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER over normalised texts (empty hypotheses count as deletions)."""
    refs = [normalise(r) for r in references]
    hyps = [normalise(h) for h in hypotheses]
    return jiwer.wer(refs, hyps)


def percentile(values: Iterable[float], q: float) -> float | None:
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    return statistics.quantiles(data, n=100, method="inclusive")[int(q) - 1]


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    start: float
    end: float
    lang: str = ""
    text: str = ""
    id: str = ""


def load_events(path: Path = SPEECH_DIR / "meeting.json", offset_s: float = 0.0) -> list[Event]:
    raw = json.loads(path.read_text(encoding="utf-8"))["events"]
    return [
        Event(e["kind"], e["start"] + offset_s, e["end"] + offset_s, e.get("lang", ""),
              e.get("text", ""), e.get("id", ""))
        for e in raw
    ]


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def assign_finals(events: list[Event], finals: list[dict[str, Any]]) -> dict[int, list[dict]]:
    """Map each final caption to the speech event it overlaps most (by index in events)."""
    speech = [(i, e) for i, e in enumerate(events) if e.kind == "speech"]
    assigned: dict[int, list[dict]] = {i: [] for i, _ in speech}
    for final in finals:
        best = max(speech, key=lambda ie: _overlap(final["start"], final["end"], ie[1].start, ie[1].end))
        if _overlap(final["start"], final["end"], best[1].start, best[1].end) > 0:
            assigned[best[0]].append(final)
    return assigned


def words_in_non_speech(events: list[Event], finals: list[dict[str, Any]]) -> int:
    """Words of finals lying mostly inside silence, noise or music."""
    count = 0
    for final in finals:
        span = max(final["end"] - final["start"], 1e-6)
        inside = sum(
            _overlap(final["start"], final["end"], e.start, e.end)
            for e in events if e.kind in NON_SPEECH_KINDS
        )
        if inside / span > 0.5:
            count += len(normalise(final["text"]).split())
    return count


FRAME_MS = 32


def speech_span_s(
    samples: np.ndarray,
    start_s: float = 0.0,
    sample_rate_hz: int = 16_000,
    margin_db: float = 12.0,
    range_db: float = 50.0,
) -> tuple[float, float]:
    """Stream times where the speech of one inserted clip starts and ends, from its 32 ms frames.

    The floor is the 10th percentile of the clip's frame energies (its own padding and pauses);
    a frame counts as speech when it is `margin_db` above that floor and within `range_db` of the
    loudest frame (so a clip padded with digital silence does not count faint hiss as speech).
    The span runs from the start of the first such frame to the end of the last one.
    """
    frame = sample_rate_hz * FRAME_MS // 1000
    count = -(-len(samples) // frame)  # the last, shorter frame counts too
    if count == 0:
        return start_s, start_s
    padded = np.zeros(count * frame, dtype=np.float64)
    padded[: len(samples)] = samples
    lengths = np.full(count, frame)
    lengths[-1] = len(samples) - (count - 1) * frame
    energy_db = 10.0 * np.log10(np.sum(padded.reshape(count, frame) ** 2, axis=1) / lengths + 1e-12)
    threshold = max(float(np.percentile(energy_db, 10)) + margin_db, float(energy_db.max()) - range_db)
    loud = np.flatnonzero(energy_db > threshold)
    if not loud.size:
        return start_s, start_s
    first, last = int(loud[0]) * frame, min((int(loud[-1]) + 1) * frame, len(samples))
    return start_s + first / sample_rate_hz, start_s + last / sample_rate_hz


def speech_end_s(samples: np.ndarray, start_s: float = 0.0, sample_rate_hz: int = 16_000) -> float:
    """Where the speech of one inserted clip ends: the end of its last 32 ms frame above the floor."""
    return speech_span_s(samples, start_s, sample_rate_hz)[1]


def reference_spans(
    events: list[Event], audio: np.ndarray, sample_rate_hz: int = 16_000
) -> dict[int, tuple[float, float]]:
    """Per speech event (by index in events): where its speech really starts and ends, from the audio."""
    return {
        index: speech_span_s(
            audio[int(round(e.start * sample_rate_hz)) : int(round(e.end * sample_rate_hz))], e.start, sample_rate_hz
        )
        for index, e in enumerate(events)
        if e.kind == "speech"
    }
