"""`relay transcribe MASTER.m3u8 --booths auto`: a live HLS master whose audio renditions are the channels.

The first 56 s of the interpreted event, its floor and three booths cut with PyAV into live
sliding playlists on 127.0.0.1 at real time: floor sentences 0-5 are English (the French and
Spanish booths interpret them, the English booth is silent), sentence 6 is French (the English
and Spanish booths interpret it, the French booth is silent).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from bench.interpretation_scoring import load_event
from tests.support.live_hls_master import LiveHlsMasterServer
from tests.test_source_lifecycle import RELAY

SECONDS = 56.0
SCORED_UNTIL_S = 50.0  # sentences 0-6 (7's interpretation is cut off by the stream's end)
EXPECTED = {  # what a viewer of each language reads for sentences 0-5, then sentence 6
    "en": ["floor"] * 6 + ["interpretation"],
    "fr": ["interpretation"] * 6 + ["floor"],
    "es": ["interpretation"] * 7,
    "original": ["floor"] * 7,
}


@pytest.fixture(scope="module")
def run():
    server = LiveHlsMasterServer(seconds=SECONDS, speed=1.0).start()
    try:
        done = subprocess.run([RELAY, "transcribe", server.url, "--booths", "auto", "--jsonl"],
                              capture_output=True, text=True, timeout=SECONDS + 180)
    finally:
        server.close()
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def _floor_finals_by_sentence(lines: list[dict]) -> dict[int, set[str]]:
    finals = [r for r in lines if r["type"] == "final" and r["channel"] == "floor" and r["text"]]
    return {u["n"]: {f["id"] for f in finals if min(f["end"], u["end"]) - max(f["start"], u["start"]) > 0.3}
            for u in load_event()["utterances"] if u["end"] <= SCORED_UNTIL_S}


def test_every_rendition_is_a_channel_decoded_in_its_language(run):
    finals = [r for r in run if r["type"] == "final" and r["text"]]
    assert {r["channel"] for r in finals} == {"floor", "booth-en", "booth-fr", "booth-es"}
    for channel, lang in (("booth-en", "en"), ("booth-fr", "fr"), ("booth-es", "es")):
        assert {r["lang"] for r in finals if r["channel"] == channel} == {lang}
    by_sentence = _floor_finals_by_sentence(run)
    assert len(by_sentence) == 7 and all(by_sentence.values()), by_sentence


@pytest.mark.parametrize("lang", sorted(EXPECTED))
def test_each_language_reads_each_passage_once_from_the_best_source(run, lang):
    by_sentence = _floor_finals_by_sentence(run)
    tracks = [t for t in run if t["type"] == "track" and t["lang"] == lang]
    covering: dict[str, list[dict]] = {}
    for track in tracks:
        for floor_id in track["covers"]:
            covering.setdefault(floor_id, []).append(track)
    # Never twice: one source per floor passage, and the floor's words or MT once (a booth may
    # speak one passage in several finals, each a caption covering it).
    mixed = {fid: [t["source"] for t in ts] for fid, ts in covering.items()
             if len({t["source"] for t in ts}) > 1 or ts[0]["source"] != "interpretation" and len(ts) > 1}
    assert mixed == {}
    assert set().union(*by_sentence.values()) <= set(covering)  # never lost
    read = [{t["source"] for fid in by_sentence[n] for t in covering[fid]} for n in range(7)]
    right = sum(sources == {expected} for sources, expected in zip(read, EXPECTED[lang]))
    # A booth's words may miss one short passage (MT then stands in); no other source is ever wrong.
    assert right >= 6, read
    assert all(sources <= {expected, "mt"} for sources, expected in zip(read, EXPECTED[lang])), read
    if lang in ("en", "fr", "es"):
        booths = {t["channel"] for t in tracks if t["source"] == "interpretation"}
        assert booths == {f"booth-{lang}"}
