"""`relay probe`: a real source's audio tracks and the mapping `--booths auto` would use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from tests.support.live_hls_master import interpretation_renditions, live_hls_master  # noqa: F401
from tests.support.media import SPEECH_DIR

RELAY = str(Path(sys.executable).with_name("relay"))
EVENT_MKA = SPEECH_DIR / "interpretation" / "event.mka"


def relay(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([RELAY, *args], capture_output=True, timeout=timeout, text=True)


def write_tagged_ts(path: Path, languages: list[str], seconds: float = 1.0) -> Path:
    """An MPEG-TS file with one short MP2 audio stream per language tag (MPEG-TS has no default flag)."""
    rate = 48000
    with av.open(str(path), "w", format="mpegts") as container:
        streams = []
        for language in languages:
            stream = container.add_stream("mp2", rate=rate, layout="mono")
            stream.metadata["language"] = language
            streams.append(stream)
        for stream in streams:
            samples = np.zeros((1, round(seconds * rate)), dtype=np.int16)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                container.mux(packet)
    return path


def test_probe_lists_the_event_tracks_and_their_mapping():
    proc = relay("probe", str(EVENT_MKA))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "4 audio track(s)" in lines[0]
    rows = [line.split() for line in lines[2:6]]
    assert [row[:6] for row in rows] == [
        ["0", "mul", "opus", "48000", "1", "yes"], ["1", "eng", "opus", "48000", "1", "no"],
        ["2", "fra", "opus", "48000", "1", "no"], ["3", "spa", "opus", "48000", "1", "no"]]
    assert rows[0][6:] == ["Floor"]
    mapping = [line.split() for line in lines[lines.index("--booths auto:") + 1 :]]
    assert mapping == [["floor", "track", "0"], ["booth-en", "track", "1"],
                       ["booth-fr", "track", "2"], ["booth-es", "track", "3"]]


def test_probe_json_gives_tracks_and_channels():
    proc = relay("probe", str(EVENT_MKA), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [(t["index"], t["language"], t["default"]) for t in report["tracks"]] == [
        (0, "mul", True), (1, "eng", False), (2, "fra", False), (3, "spa", False)]
    assert [(c["name"], c["lang"], c["stream_index"]) for c in report["channels"]] == [
        ("floor", None, 0), ("booth-en", "en", 1), ("booth-fr", "fr", 2), ("booth-es", "es", 3)]
    assert report["error"] is None and report["ignored"] == []


def test_probe_maps_the_renditions_of_a_live_hls_master(live_hls_master):  # noqa: F811
    server = live_hls_master(seconds=12.0)
    proc = relay("probe", server.url, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    by_language = {t["language"]: t for t in report["tracks"]}
    assert {"mul", "en", "fr", "es"} <= set(by_language)
    assert by_language["mul"]["default"] and by_language["mul"]["title"] == "Floor"
    assert by_language["fr"]["title"] == "Français" and by_language["fr"]["codec"] == "aac"
    channels = {c["name"]: c["stream_index"] for c in report["channels"]}
    assert channels == {"floor": by_language["mul"]["index"], "booth-en": by_language["en"]["index"],
                        "booth-fr": by_language["fr"]["index"], "booth-es": by_language["es"]["index"]}
    # FFmpeg also lists the variant stream (untagged): another floor candidate, left out.
    assert all("floor candidate" in i["reason"] for i in report["ignored"])


def test_probe_finds_the_floor_rendition_without_a_language(live_hls_master):  # noqa: F811
    server = live_hls_master(interpretation_renditions(floor_language=None), seconds=8.0)
    report = json.loads(relay("probe", server.url, "--json").stdout)
    floor = next(t for t in report["tracks"] if t["title"] == "Floor")
    assert floor["language"] == "" and floor["default"]
    assert report["channels"][0] == {"name": "floor", "lang": None, "stream_index": floor["index"]}
    assert sorted(c["lang"] for c in report["channels"][1:]) == ["en", "es", "fr"]


def test_probe_finds_the_floor_in_the_variant_stream(live_hls_master):  # noqa: F811
    # The floor rendition has no URI: FFmpeg gives its LANGUAGE and NAME to the variant's stream.
    server = live_hls_master(seconds=8.0, floor_in_variant=True)
    report = json.loads(relay("probe", server.url, "--json").stdout)
    floor = next(t for t in report["tracks"] if t["language"] == "mul")
    assert floor["title"] == "Floor" and floor["default"]
    assert [c["name"] for c in report["channels"]] == ["floor", "booth-en", "booth-fr", "booth-es"]
    assert report["channels"][0]["stream_index"] == floor["index"] and report["ignored"] == []


def test_probe_reports_a_source_without_a_floor(tmp_path):
    source = write_tagged_ts(tmp_path / "booths.ts", ["eng", "fra"])
    proc = relay("probe", str(source))
    assert proc.returncode == 1
    assert "error: no floor track" in proc.stdout
    assert [line.split()[1] for line in proc.stdout.splitlines()[2:4]] == ["eng", "fra"]


def test_booths_auto_without_a_floor_fails_before_models_load(tmp_path):
    source = write_tagged_ts(tmp_path / "booths.ts", ["eng", "fra"])
    proc = relay("transcribe", str(source), "--booths", "auto", "--model", str(tmp_path / "no-model"))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("relay: no floor track")


def test_probe_of_a_missing_file_is_one_line_error(tmp_path):
    proc = relay("probe", str(tmp_path / "nope.mka"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"relay: cannot read source '{tmp_path / 'nope.mka'}': No such file or directory"
