"""The streaming VAD against Silero run on the whole recording at once."""

import numpy as np
from faster_whisper.vad import get_vad_model

from relay.vad import WINDOW_SAMPLES, StreamingVad


def test_streaming_probabilities_equal_whole_file(meeting_audio):
    audio = meeting_audio[: 30 * 16000]
    whole = get_vad_model()(audio[: len(audio) // WINDOW_SAMPLES * WINDOW_SAMPLES]).reshape(-1)
    vad = StreamingVad()
    streamed = np.concatenate([vad.process(audio[i : i + 777]) for i in range(0, len(audio), 777)])
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_speech_scores_high_and_silence_low(meeting_audio):
    vad = StreamingVad()
    probs = vad.process(meeting_audio[: 13 * 16000])  # 1.5 s silence, then JFK
    windows_per_s = 16000 / WINDOW_SAMPLES
    assert probs[: int(1.2 * windows_per_s)].max() < 0.2
    assert np.median(probs[int(2 * windows_per_s) : int(12 * windows_per_s)]) > 0.5


def test_partial_window_is_held_until_complete():
    vad = StreamingVad()
    assert vad.process(np.zeros(WINDOW_SAMPLES - 1, dtype=np.float32)).size == 0
    assert vad.process(np.zeros(1, dtype=np.float32)).size == 1
