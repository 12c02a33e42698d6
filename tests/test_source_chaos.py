"""Chaos on the source: a live HLS server killed and restarted 30 times under one `relay serve`.

Every return is captioned, and the relay holds no more file descriptors, threads or child
(Apertium) processes after the 30th return than after the 3rd.
"""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import psutil
import pytest

from bench.scoring import normalise
from tests.support.live_hls import LiveHlsServer
from tests.conftest import load_audio
from tests.support.media import SPEECH_DIR
from tests.test_source_lifecycle import Serve, export

CYCLES = 30
UP_S = 4.5  # each return airs this much speech before the next kill
DOWN_S = 1.5
GAP_S = 0.6  # silence between sentences, so the segmenter commits each


def _speech_file(path: Path, clips: list[dict]) -> list[dict]:
    """Every clip in turn with short pauses, as one WAV; returns [{start, end, text}] in file time."""
    rate = 16_000
    pieces, sentences, at = [], [], 0.0
    for clip in clips:
        samples = load_audio(SPEECH_DIR / clip["path"])  # float32 in [-1, 1], 16 kHz mono
        pieces += [samples, np.zeros(int(GAP_S * rate), np.float32)]
        sentences.append({"start": at, "end": at + len(samples) / rate, "text": clip["text"]})
        at += len(samples) / rate + GAP_S
    audio = (np.clip(np.concatenate(pieces), -1.0, 1.0) * 32767).astype(np.int16)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        out.mux(stream.encode(None))
    return sentences


def _resources(pid: int) -> dict[str, int]:
    process = psutil.Process(pid)
    return {"fds": process.num_fds(), "threads": process.num_threads(),
            "children": len(process.children(recursive=True))}


def _said_in(final: str, sentences: list[dict]) -> bool:
    """Most words of the final belong to one of these sentences."""
    words = normalise(final).split()
    return len(words) >= 2 and any(
        sum(w in set(normalise(s["text"]).split()) for w in words) >= 0.6 * len(words) for s in sentences
    )


@pytest.fixture(scope="module")
def chaos(tmp_path_factory, clips):
    tmp = tmp_path_factory.mktemp("chaos")
    sentences = _speech_file(tmp / "speech.wav", clips)
    data = tmp / "data"
    data.mkdir()
    record: dict = {"sentences": sentences, "returns": []}
    with LiveHlsServer(tmp / "speech.wav", segment_s=1.0, window=6, loop=True) as server:
        relay = Serve(server.url, data)
        try:
            relay.wait_for(lambda s: s["source"]["state"] == "connected" and s["captions_published"] > 0,
                           180, "captioned the stream")
            for cycle in range(1, CYCLES + 1):
                server.stop()
                time.sleep(DOWN_S)
                server.start()
                returned = server.file_time_at()
                time.sleep(UP_S)
                record["returns"].append((returned, server.file_time_at()))
                if cycle == 3:
                    record["before"] = _resources(relay.proc.pid)
            relay.wait_for(lambda s: s["source"]["state"] == "connected", 30, "reconnected at the end")
            record["after"] = _resources(relay.proc.pid)
            relay.proc.terminate()
            relay.proc.wait(timeout=120)
        finally:
            relay.kill()
    record["finals"] = [f for f in export(data) if f["text"]]
    record["returncode"] = relay.proc.returncode
    return record


def test_every_return_is_captioned(chaos):
    finals = [f["text"] for f in chaos["finals"]]
    uncaptioned = []
    for index, (returned, killed) in enumerate(chaos["returns"], 1):
        aired = [s for s in chaos["sentences"] if s["end"] > returned - 2.0 and s["start"] < killed]
        if not any(_said_in(text, aired) for text in finals):
            uncaptioned.append((index, [s["text"] for s in aired]))
    assert not uncaptioned, uncaptioned


def test_no_descriptor_thread_or_process_leaks(chaos):
    before, after = chaos["before"], chaos["after"]
    assert after["fds"] <= before["fds"] + 3, (before, after)
    assert after["threads"] <= before["threads"] + 2, (before, after)
    assert after["children"] <= before["children"], (before, after)
    assert before["children"] >= 1  # the Apertium pipelines run as child processes


def test_the_relay_stops_cleanly_with_a_contiguous_transcript(chaos):
    assert chaos["returncode"] == 0
    seqs = [f["seq"] for f in chaos["finals"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
