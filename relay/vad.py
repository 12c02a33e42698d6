"""Streaming speech probabilities from faster-whisper's bundled Silero VAD."""

from __future__ import annotations

import numpy as np

from faster_whisper.vad import get_vad_model

WINDOW_SAMPLES = 512  # 32 ms at 16 kHz: the window Silero v6 is trained on
_CONTEXT_SAMPLES = 64
_STATE_SHAPE = (1, 1, 128)


class StreamingVad:
    """Feeds audio in any chunk size, returns one speech probability per 32 ms window.

    The ONNX model carries an LSTM state (h, c) and a 64-sample left context from
    window to window; both are kept here so a stream gives the same probabilities
    as the whole file would in one call.
    """

    def __init__(self) -> None:
        self._session = get_vad_model().session
        self._pending = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(_CONTEXT_SAMPLES, dtype=np.float32)
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)

    def reset(self) -> None:
        """Forget all state, e.g. after the source reconnects."""
        self.__init__()

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Return probabilities for every complete window now available (possibly none)."""
        audio = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        n_windows = len(audio) // WINDOW_SAMPLES
        self._pending = audio[n_windows * WINDOW_SAMPLES :]
        if n_windows == 0:
            return np.zeros(0, dtype=np.float32)
        windows = audio[: n_windows * WINDOW_SAMPLES].reshape(n_windows, WINDOW_SAMPLES)
        contexts = np.empty((n_windows, _CONTEXT_SAMPLES), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = windows[:-1, -_CONTEXT_SAMPLES:]
        self._context = windows[-1, -_CONTEXT_SAMPLES:].copy()
        batch = np.concatenate([contexts, windows], axis=1)
        output, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        return np.asarray(output, dtype=np.float32).reshape(-1)
