"""The commit policy on real speech: where utterances start, end, settle and get cut."""

from __future__ import annotations

import numpy as np
import pytest

from relay.messages import SAMPLE_RATE_HZ
from relay.segmenter import Segmenter, SegmenterSettings
from relay.vad import StreamingVad
from tests.conftest import load_audio


def segment(audio: np.ndarray, settings: SegmenterSettings | None = None, chunk: int = 1024):
    vad, seg, out, buffered = StreamingVad(), Segmenter(settings), [], []
    for start in range(0, len(audio), chunk):
        piece = audio[start : start + chunk]
        out.extend(seg.push(piece, vad.process(piece)))
        buffered.append(seg.buffered_seconds)
    out.extend(seg.flush())
    return out, max(buffered)


@pytest.fixture(scope="module")
def meeting_snapshots(meeting_audio):
    return segment(meeting_audio)


def overlap(a0, a1, b0, b1):
    return max(0.0, min(a1, b1) - max(a0, b0))


def test_every_speech_event_is_covered_by_finals(meeting_snapshots, meeting_events):
    finals = [u for u in meeting_snapshots[0] if u.final]
    for event in (e for e in meeting_events if e["kind"] == "speech"):
        covered = sum(overlap(u.speech_start_s, u.speech_end_s, event["start"], event["end"]) for u in finals)
        assert covered >= 0.6 * (event["end"] - event["start"]), event["id"]


def test_no_utterance_in_noise_music_or_long_silence(meeting_snapshots, meeting_events):
    quiet = [e for e in meeting_events if e["kind"] in ("noise", "music") or
             (e["kind"] == "silence" and e["end"] - e["start"] > 2)]
    for utt in meeting_snapshots[0]:
        for event in quiet:
            inside = overlap(utt.speech_start_s, utt.speech_end_s, event["start"], event["end"])
            assert inside < 0.3, (utt.id, event)


def test_finals_are_in_order_and_do_not_overlap(meeting_snapshots):
    finals = [u for u in meeting_snapshots[0] if u.final]
    for before, after in zip(finals, finals[1:]):
        assert before.end_s <= after.start_s + 0.5
        assert before.speech_end_s <= after.speech_start_s


def test_a_settled_snapshot_holds_exactly_the_final_audio(meeting_snapshots):
    snapshots = meeting_snapshots[0]
    finals = {u.id: u for u in snapshots if u.final}
    settled = [u for u in snapshots if u.settled and not u.final]
    matched = [u for u in settled if finals.get(u.id) and finals[u.id].key == u.key]
    assert len(matched) >= 0.8 * len(finals)
    for snap in matched:
        np.testing.assert_array_equal(snap.samples, finals[snap.id].samples)


def test_partials_come_before_the_final_of_their_utterance(meeting_snapshots):
    final_index = {u.id: i for i, u in enumerate(meeting_snapshots[0]) if u.final}
    for i, utt in enumerate(meeting_snapshots[0]):
        if not utt.final:
            assert i < final_index[utt.id]


def test_onset_backtrack_keeps_a_soft_first_word(meeting_snapshots):
    # "Clave incorrecta" starts at 76.45 s after a 7 s silence; Silero only passes 0.5 at 77.1 s.
    finals = [u for u in meeting_snapshots[0] if u.final and 75 < u.speech_end_s < 83]
    assert finals and finals[0].start_s <= 76.6


def test_buffer_stays_bounded(meeting_snapshots):
    settings = SegmenterSettings()
    assert meeting_snapshots[1] <= settings.max_utterance_s + 2


def test_long_speech_without_pauses_is_cut_below_the_cap(speech_dir):
    clip = load_audio(speech_dir / "clips" / "en-ast-conf-usermenu.flac")  # 14 s, short pauses
    settings = SegmenterSettings(max_utterance_s=5.0, min_silence_ms=2000)
    snapshots, buffered = segment(clip, settings)
    finals = [u for u in snapshots if u.final]
    assert len(finals) >= 3
    assert all(len(u.samples) <= 5.0 * SAMPLE_RATE_HZ + 512 for u in finals)
    assert buffered <= 5.0 + 2
    joined = sum(len(u.samples) for u in finals)
    assert joined >= 0.8 * len(clip)


def scripted(pattern: list[tuple[float, float]], settings: SegmenterSettings | None = None, flush: bool = True):
    """Snapshots from VAD probabilities given as (seconds, probability) runs (the audio is silence)."""
    from relay.vad import WINDOW_SAMPLES

    probs = np.concatenate([np.full(round(sec * SAMPLE_RATE_HZ / WINDOW_SAMPLES), p) for sec, p in pattern])
    seg = Segmenter(settings)
    out = seg.push(np.zeros(len(probs) * WINDOW_SAMPLES, dtype=np.float32), probs)
    return (out + seg.flush() if flush else out), seg


def test_no_partial_is_offered_just_before_the_cap():
    s = SegmenterSettings()
    snapshots, _ = scripted([(1.0, 0.0), (2 * s.max_utterance_s, 0.9), (1.0, 0.0)])
    cuts = [u for u in snapshots if u.final]
    assert len(cuts) >= 2
    for u in snapshots:
        if not u.final and not u.settled:  # a partial: its utterance's cap is at least an interval away
            final = next(f for f in cuts if f.id == u.id)
            assert u.end_s + s.partial_interval_ms / 1000 <= final.start_s + s.max_utterance_s + 1e-6
    assert sum(1 for u in snapshots if not u.final and not u.settled) >= 2 * (s.max_utterance_s - 1) / (s.partial_interval_ms / 1000) - 2


def test_chunk_size_does_not_change_the_finals(meeting_audio):
    audio = meeting_audio[: 45 * SAMPLE_RATE_HZ]
    small = [u.key for u in segment(audio, chunk=320)[0] if u.final]
    large = [u.key for u in segment(audio, chunk=4096)[0] if u.final]
    assert small == large


def test_flush_commits_speech_in_progress(meeting_audio):
    vad, seg = StreamingVad(), Segmenter()
    audio = meeting_audio[: 8 * SAMPLE_RATE_HZ]  # cut in the middle of JFK speaking
    seg.push(audio, vad.process(audio))
    finals = [u for u in seg.flush() if u.final]
    assert finals and finals[-1].end_s <= 8.0


def test_pure_silence_gives_nothing():
    vad, seg = StreamingVad(), Segmenter()
    audio = np.zeros(10 * SAMPLE_RATE_HZ, dtype=np.float32)
    assert seg.push(audio, vad.process(audio)) == [] and seg.flush() == []
