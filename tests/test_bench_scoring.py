"""bench.scoring.speech_end_s: where an inserted clip's speech ends, from its audio."""

from __future__ import annotations

import numpy as np
import pytest

from bench.scoring import SPEECH_DIR, load_events, reference_spans, speech_end_s, speech_span_s

RATE = 16_000


def _noise(seconds: float, level_db: float, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, 10 ** (level_db / 20), int(seconds * RATE)).astype(np.float32)


def _tone(seconds: float, level_db: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sqrt(2) * 10 ** (level_db / 20) * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_end_is_the_last_frame_above_the_noise_floor() -> None:
    rng = np.random.default_rng(1)
    clip = np.concatenate([_noise(0.5, -60, rng), _tone(0.8, -20) + _noise(0.8, -60, rng), _noise(0.7, -60, rng)])
    end = speech_end_s(clip, start_s=10.0)
    assert 11.3 - 0.032 <= end <= 11.3 + 0.032
    assert end < 10.0 + len(clip) / RATE


def test_speech_running_to_the_clip_end_ends_at_the_clip_end() -> None:
    rng = np.random.default_rng(2)
    clip = np.concatenate([_noise(0.5, -55, rng), _tone(1.024, -25)])
    assert speech_end_s(clip, start_s=3.0) == pytest.approx(3.0 + len(clip) / RATE)


def test_faint_hiss_after_digital_silence_padding_is_not_speech() -> None:
    rng = np.random.default_rng(3)
    clip = np.concatenate([np.zeros(RATE, np.float32), _tone(0.64, -15), np.zeros(RATE // 2, np.float32),
                           _noise(0.3, -85, rng), np.zeros(RATE // 2, np.float32)])
    assert speech_end_s(clip) == pytest.approx(1.64, abs=0.032)


def test_quiet_clip_end_is_its_start() -> None:
    assert speech_span_s(np.zeros(100, np.float32), start_s=4.0) == (4.0, 4.0)


def test_start_is_the_first_frame_above_the_noise_floor() -> None:
    rng = np.random.default_rng(4)
    clip = np.concatenate([_noise(0.4, -60, rng), _tone(0.5, -20), _noise(0.4, -60, rng)])
    start, end = speech_span_s(clip, start_s=2.0)
    assert 2.4 - 0.032 <= start <= 2.4 + 0.001
    assert start < end


@pytest.mark.skipif(not (SPEECH_DIR / "meeting.flac").exists(), reason="shared speech data not present")
def test_meeting_reference_ends_lie_inside_their_clips() -> None:
    from faster_whisper.audio import decode_audio

    events = load_events()
    spans = reference_spans(events, decode_audio(str(SPEECH_DIR / "meeting.flac")))
    speech = [i for i, e in enumerate(events) if e.kind == "speech"]
    assert sorted(spans) == speech
    assert all(events[i].start <= spans[i][0] < spans[i][1] <= events[i].end for i in speech)
    # Asterisk prompts are padded with silence: their speech ends before the clip does.
    padded = [i for i in speech if "-ast-" in events[i].id]
    assert padded and all(spans[i][1] < events[i].end - 0.05 for i in padded)


def test_delays_run_from_the_speech_to_the_socket_and_first_partials_count_partials_only() -> None:
    from bench.scoring import Event
    from bench.transcription import score

    zero = 1000.0
    events = [Event("speech", 1.0, 4.0, "en", "good morning everyone", "a"),
              Event("silence", 4.0, 5.0),
              Event("speech", 5.0, 8.0, "en", "thank you", "b")]
    spans = {0: (1.2, 3.5), 2: (5.1, 7.0)}

    def caption(kind: str, start: float, end: float, text: str, wall: float, arrival: float) -> dict:
        return {"type": kind, "lang": "en", "start": start, "end": end, "text": text, "wall": wall,
                "sent": zero + wall, "arrival": zero + arrival}

    captions = [
        caption("partial", 0.9, 2.0, "good", 2.0, 2.1),  # starts in the padding before the clip: still counted
        caption("final", 0.9, 3.6, "good morning everyone", 4.0, 4.1),
        caption("final", 5.0, 7.1, "thank you", 7.5, 7.6),  # no partial: must not count as a first partial
    ]
    result = score(events, spans, captions)
    assert result["final_delay_s"]["viewer_socket"]["p50"] == pytest.approx((0.6 + 0.6) / 2)
    assert result["final_delay_s"]["wall"]["max"] == pytest.approx(0.5)
    assert result["final_delay_s"]["wall_after_clip_end"]["max"] == pytest.approx(0.0)
    assert result["first_partial_delay_s"]["utterances_with_a_partial"] == 1
    assert result["first_partial_delay_s"]["viewer_socket"]["p50"] == pytest.approx(2.1 - 1.2)
    assert result["wer"] == {"en": 0.0}
