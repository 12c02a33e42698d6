"""Cut a stream into utterances from VAD probabilities: the streaming commit policy.

Plain synchronous code. Every 32 ms window moves a small state machine:

- IDLE until a window reaches `threshold`: an utterance opens. Its onset is moved back over
  the preceding windows still above `backtrack_threshold` (after a long silence Silero's state
  is slow to rise, and soft first syllables sit at 0.2-0.4), then `pre_pad_ms` more audio is
  kept so the first phoneme is not clipped.
- While speaking, a snapshot (partial) is offered `first_partial_ms` after the onset and then
  every `partial_interval_ms`, only while the current window is speech (a decode started in a
  pause would hold the worker when the final is due).
- After `settle_ms` of silence, a *settled* snapshot ending `end_pad_ms` after the last speech
  is offered: if nobody speaks again it is exactly the audio of the final, so its decode, started
  early, is reused as the final (speculative commit).
- After `min_silence_ms` of silence, the utterance is final. An utterance longer than
  `max_utterance_s` is cut at its quietest recent window, so the buffer never grows unbounded.
  No partial is offered within `partial_interval_ms` of that cap: the cap's final is due first,
  and a partial decoded beside it would take a core from it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from relay.messages import SAMPLE_RATE_HZ, Utterance
from relay.vad import WINDOW_SAMPLES

_MS = SAMPLE_RATE_HZ // 1000


@dataclass(frozen=True, slots=True)
class SegmenterSettings:
    """Tuning of the commit policy; measured choices are in docs/benchmarks.md."""

    threshold: float = 0.5
    neg_threshold: float = 0.35
    pre_pad_ms: int = 400
    end_pad_ms: int = 64
    settle_ms: int = 64
    min_silence_ms: int = 500
    min_speech_ms: int = 250
    backtrack_threshold: float = 0.15
    max_backtrack_ms: int = 1000
    first_partial_ms: int = 300
    partial_interval_ms: int = 800
    max_utterance_s: float = 15.0
    cut_search_s: float = 3.0


class Segmenter:
    """Turns (audio, speech probability per window) into Utterance snapshots."""

    def __init__(
        self,
        settings: SegmenterSettings | None = None,
        id_prefix: str = "u",
        start_s: float = 0.0,
        first_number: int = 1,
    ) -> None:
        self.settings = settings or SegmenterSettings()
        if self.settings.end_pad_ms > self.settings.settle_ms:
            raise ValueError("end_pad_ms must not exceed settle_ms")
        self._id_prefix = id_prefix
        self._count = first_number - 1
        self._origin = round(start_s * SAMPLE_RATE_HZ)  # stream sample index of window 0
        self._audio = np.zeros(0, dtype=np.float32)
        self._audio_start = self._origin  # stream sample index of self._audio[0]
        self._windows_done = 0  # windows classified since the origin
        self._utt: _OpenUtterance | None = None
        self._recent: deque[float] = deque(maxlen=self.settings.max_backtrack_ms * _MS // WINDOW_SAMPLES)

    @property
    def next_number(self) -> int:
        """The number the next utterance id will take, to carry ids across a reset."""
        return self._count + 1

    @property
    def buffered_seconds(self) -> float:
        """Audio held in memory, for monitoring the bound."""
        return len(self._audio) / SAMPLE_RATE_HZ

    @property
    def open_speech_s(self) -> float | None:
        """Stream time the utterance being spoken began (its speech_start_s), or None."""
        return self._utt.onset / SAMPLE_RATE_HZ if self._utt is not None else None

    def push(self, samples: np.ndarray, probs: np.ndarray) -> list[Utterance]:
        """Append audio and the probabilities of the windows it completed; return snapshots."""
        self._audio = np.concatenate([self._audio, samples.astype(np.float32, copy=False)])
        out: list[Utterance] = []
        for prob in probs:
            window_end = self._origin + (self._windows_done + 1) * WINDOW_SAMPLES
            self._windows_done += 1
            self._step(float(prob), window_end, out)
        self._trim()
        return out

    def flush(self) -> list[Utterance]:
        """End of stream: commit whatever is being said."""
        out: list[Utterance] = []
        if self._utt is not None:
            self._finish(self._utt.last_speech_end + self.settings.end_pad_ms * _MS, out)
        return out

    def _step(self, prob: float, window_end: int, out: list[Utterance]) -> None:
        s = self.settings
        utt = self._utt
        if utt is None:
            if prob >= s.threshold:
                self._open(window_end)
            else:
                self._recent.append(prob)
            return
        utt.probs.append(prob)
        if prob >= s.neg_threshold:
            utt.last_speech_end = window_end
            utt.speech_samples += WINDOW_SAMPLES
            utt.settled_offered = False
            if prob >= s.threshold and self._partial_due(utt, window_end):
                utt.last_partial_end = window_end
                out.append(self._snapshot(utt, window_end, final=False, settled=False))
        silence = window_end - utt.last_speech_end
        if silence >= s.min_silence_ms * _MS:
            self._finish(utt.last_speech_end + s.end_pad_ms * _MS, out)
        elif silence >= s.settle_ms * _MS and not utt.settled_offered:
            utt.settled_offered = True
            if utt.speech_samples >= s.min_speech_ms * _MS:
                end = utt.last_speech_end + s.end_pad_ms * _MS
                out.append(self._snapshot(utt, end, final=False, settled=True))
        elif window_end - utt.start >= s.max_utterance_s * SAMPLE_RATE_HZ:
            self._cut(window_end, out)

    def _open(self, window_end: int) -> None:
        onset = window_end - WINDOW_SAMPLES
        for prob in reversed(self._recent):
            if prob < self.settings.backtrack_threshold:
                break
            onset -= WINDOW_SAMPLES
        self._recent.clear()
        start = max(self._audio_start, onset - self.settings.pre_pad_ms * _MS)
        self._count += 1
        self._utt = _OpenUtterance(f"{self._id_prefix}{self._count}", start, onset, window_end)

    def _partial_due(self, utt: _OpenUtterance, window_end: int) -> bool:
        s = self.settings
        if window_end + s.partial_interval_ms * _MS > utt.start + s.max_utterance_s * SAMPLE_RATE_HZ:
            return False  # the cap's final comes first
        if utt.last_partial_end is None:
            return window_end - utt.onset >= s.first_partial_ms * _MS
        return window_end - utt.last_partial_end >= s.partial_interval_ms * _MS

    def _finish(self, end: int, out: list[Utterance]) -> None:
        utt = self._utt
        assert utt is not None
        self._utt = None
        if utt.speech_samples >= self.settings.min_speech_ms * _MS:
            out.append(self._snapshot(utt, end, final=True, settled=True))

    def _cut(self, window_end: int, out: list[Utterance]) -> None:
        """Split a too-long utterance at its quietest recent window and carry on speaking."""
        utt = self._utt
        assert utt is not None
        search = int(self.settings.cut_search_s * SAMPLE_RATE_HZ) // WINDOW_SAMPLES
        recent = utt.probs[-search:]
        quietest = int(np.argmin(recent))
        cut = window_end - (len(recent) - 1 - quietest) * WINDOW_SAMPLES
        out.append(self._snapshot(utt, cut, final=True, settled=False))
        self._count += 1
        self._utt = _OpenUtterance(f"{self._id_prefix}{self._count}", cut, cut, window_end)
        self._utt.speech_samples = window_end - cut

    def _snapshot(self, utt: _OpenUtterance, end: int, *, final: bool, settled: bool) -> Utterance:
        end = min(end, self._audio_start + len(self._audio))
        samples = self._audio[utt.start - self._audio_start : end - self._audio_start].copy()
        return Utterance(
            id=utt.id,
            samples=samples,
            start_s=utt.start / SAMPLE_RATE_HZ,
            speech_start_s=utt.onset / SAMPLE_RATE_HZ,
            speech_end_s=min(utt.last_speech_end, end) / SAMPLE_RATE_HZ,
            final=final,
            settled=settled,
        )

    def _trim(self) -> None:
        """Drop audio nobody can need again: before the open utterance, or beyond the pre-pad."""
        if self._utt is not None:
            keep_from = self._utt.start
        else:
            done = self._origin + self._windows_done * WINDOW_SAMPLES
            keep_from = done - (self.settings.pre_pad_ms + self.settings.max_backtrack_ms) * _MS
        drop = keep_from - self._audio_start
        if drop > 0:
            self._audio = self._audio[drop:]
            self._audio_start += drop


class _OpenUtterance:
    """Mutable bookkeeping of the utterance being spoken."""

    __slots__ = (
        "id", "start", "onset", "last_speech_end", "speech_samples",
        "last_partial_end", "settled_offered", "probs",
    )

    def __init__(self, utt_id: str, start: int, onset: int, window_end: int) -> None:
        self.id = utt_id
        self.start = start
        self.onset = onset
        self.last_speech_end = window_end
        self.speech_samples = WINDOW_SAMPLES
        self.last_partial_end: int | None = None
        self.settled_offered = False
        self.probs: list[float] = []
