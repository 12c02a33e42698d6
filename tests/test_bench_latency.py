"""bench.latency_scoring and bench.latency_feed: the outside-clock delays, their parts, word delays."""

from __future__ import annotations

import io
import json
import wave

import av
import numpy as np

from bench.latency_feed import _MatroskaPipe, pcm, wav_header
from bench.latency_scoring import PARTS, final_delays, parts, utterances, word_delays, word_times
from bench.meetings import WORDS_FILE, build, clips
from bench.scoring import Event
from relay.channels import map_tracks
from relay.probe import probe
from relay.source import SourceSettings


def _final(seq: int, cid: str, text: str, start: float, end: float, arrival: float) -> dict:
    return {"type": "final", "channel": "floor", "id": cid, "seq": seq, "text": text, "lang": "en",
            "start": start, "end": end, "arrival": arrival}


def test_a_streaming_wav_header_reads_as_16k_mono_pcm() -> None:
    data = wav_header() + pcm(np.zeros(1600, dtype=np.float32))
    with wave.open(io.BytesIO(data)) as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (16000, 1, 2)


def test_the_booths_feed_is_matroska_that_booths_auto_maps_to_the_floor_and_three_booths(tmp_path) -> None:
    path = tmp_path / "feed.mka"
    tone = np.linspace(-0.5, 0.5, 320, dtype=np.float32)
    with path.open("wb") as out:
        pipe = _MatroskaPipe(out, ["mul", "eng", "fra", "spa"])
        for _ in range(50):  # 1 s in 20 ms chunks, each track its own level
            pipe.write([tone * (k + 1) / 4 for k in range(4)])
        pipe.close()
    tracks, mapping, problem = probe(SourceSettings(str(path)))
    assert problem == "" and mapping is not None
    assert [(c.name, c.lang) for c in mapping.channels] == [
        ("floor", None), ("booth-en", "en"), ("booth-fr", "fr"), ("booth-es", "es")]
    assert [(t.sample_rate_hz, t.channels) for t in tracks] == [(16000, 1)] * 4 and map_tracks(SourceSettings(str(path)), tracks) == mapping

    with av.open(str(path)) as container:  # every sample of every track, in order
        got = {s.index: [] for s in container.streams.audio}
        for packet in container.demux(*container.streams.audio):
            got[packet.stream.index] += [frame.to_ndarray().reshape(-1) for frame in packet.decode()]
    for k, frames in got.items():
        assert np.array_equal(np.concatenate(frames), np.tile(np.frombuffer(pcm(tone * (k + 1) / 4), "<i2"), 50))


def test_a_split_final_is_timed_from_its_last_piece_and_the_speech_it_covers() -> None:
    captions = [_final(1, "u1", "Hello there.", 1.2, 2.0, 100.0), _final(2, "u1.2", "And more.", 2.0, 3.9, 100.2)]
    groups = utterances(captions, lambda s: s - 1.0)  # the relay's clock runs 1 s ahead of the meeting's
    events = [Event("speech", 0.1, 3.2, "en", "Hello there and more")]
    rows = final_delays(groups, events, {0: (0.2, 2.9)}, spoken_at=lambda m: 50.0 + m)
    assert len(rows) == 1 and rows[0]["id"] == "u1"
    assert abs(rows[0]["delay"] - (100.2 - 52.9)) < 1e-9


def test_a_final_cut_mid_speech_is_timed_from_its_own_end() -> None:
    groups = utterances([_final(1, "u1", "A long speech", 0.0, 15.0, 30.0)], lambda s: s)
    rows = final_delays(groups, [Event("speech", 0.0, 25.0, "en", "x")], {0: (0.0, 24.0)}, spoken_at=lambda m: m)
    assert rows[0]["speech_end"] == 15.0 and rows[0]["delay"] == 15.0


def test_the_parts_add_up_to_the_delay() -> None:
    row = {"spoken_end_at": 1000.0, "arrival": 1000.9}
    timing = {"settled_offered": 10.1, "settled_decode_start": 10.1, "settled_decode_end": 10.55,
              "final_offered": 10.5, "decoded": 10.6, "to_captions": 10.6, "translated": 10.61,
              "published": 10.62, "realtime_minus_monotonic": 990.0}
    split = parts(row, timing)
    assert split is not None and split["reused_settled"]
    assert abs(sum(split[k] for k in PARTS) - 0.9) < 1e-9
    assert abs(split["decode"] - 0.45) < 1e-9 and abs(split["hold"] - 0.05) < 1e-9


def test_a_word_counts_from_the_first_caption_that_shows_it_right() -> None:
    table = {"c1": {"text": "one two three", "lang": "en", "seconds": 2.0}}
    meeting = {"clips": [{"clip": "c1", "start": 10.0}]}
    words = word_times(meeting, {"c1": [["One", 0.0, 0.4], ["two", 0.4, 0.8], ["three", 0.8, 1.2]]}, table)
    assert [round(w["end"], 3) for w in words] == [10.4, 10.8, 11.2]
    captions = [{"type": "partial", "channel": "floor", "text": "One too", "start": 10.0, "end": 10.9, "arrival": 11.0},
                {"type": "final", "channel": "floor", "text": "One two three.", "start": 10.0, "end": 11.3, "arrival": 12.0}]
    delays = word_delays(words, captions, lambda s: s, lambda m: m, meeting["clips"], table)
    assert delays["en"]["n"] == 3 and delays["en"]["never_shown_right"] == 0
    assert delays["en"]["max"] == 1.2  # "two": misheard in the partial, right in the final (12.0 - 10.8)


def test_a_clip_heard_twice_is_timed_each_time_from_its_own_words() -> None:
    table = {"c1": {"text": "one two", "lang": "en", "seconds": 1.0}}
    meeting = {"clips": [{"clip": "c1", "start": 10.0}, {"clip": "c1", "start": 100.0}]}  # a looped meeting
    words = word_times(meeting, {"c1": [["one", 0.0, 0.4], ["two", 0.4, 0.8]]}, table)
    assert [(w["placed"], round(w["end"], 3)) for w in words] == [(0, 10.4), (0, 10.8), (1, 100.4), (1, 100.8)]
    captions = [{"type": "final", "channel": "floor", "text": "One two.", "start": s, "end": s + 1.0, "arrival": s + 1.5}
                for s in (10.0, 100.0)]
    delays = word_delays(words, captions, lambda s: s, lambda m: m, meeting["clips"], table)
    assert delays["en"]["n"] == 4 and delays["en"]["max"] == 1.1  # 11.5 - 10.4, 101.5 - 100.4: never 90 s apart


def test_built_meetings_are_deterministic_and_their_clips_have_word_times() -> None:
    audio, meta = build("shuffle-a")
    again, meta_again = build("shuffle-a")
    assert np.array_equal(audio, again) and meta == meta_again
    spoken = [e for e in meta["events"] if e["kind"] == "speech"]
    assert len(spoken) == len(meta["clips"]) >= 20
    assert any(e["kind"] in ("noise", "music") for e in meta["events"])
    assert float(np.sqrt(np.mean(audio[:16000] ** 2))) > 0  # room tone, never digital silence
    aligned = json.loads(WORDS_FILE.read_text(encoding="utf-8"))
    assert set(aligned) == set(clips())
