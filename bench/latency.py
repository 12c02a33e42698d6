"""Final captions by the outside clock: each test meeting fed live, captions stamped at a viewer's socket.

    python -m bench.latency [--meetings meeting shuffle-a ...] [--feeds stdin hls] [--out FILE]

For each meeting (bench.meetings) and feed (bench.latency_feed: stdin written at real time, or a
live HLS server on 127.0.0.1; for the interpreted event, its floor and three booths as a live HLS
master or as live Matroska on stdin), `relay serve` runs with `RELAY_TIMINGS` (its stage stamps) and one
measuring viewer (bench.probe: kernel receive times). Scored by bench.latency_scoring: final
delay from the end of speech (the bench's clock) to the socket, and its parts; word delays; WER
per language against offline faster-whisper on each sentence alone (beam 5, the same model);
words in non-speech. `meeting` is the visible meeting the policy was tuned on; the others are
reported as they come.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.latency_feed import BoothsFeed, HlsFeed, StdinFeed
from bench.latency_scoring import (
    breakdown, drift, final_delays, quality, speech_ends, stats, utterances, word_delays, word_times,
)
from bench.meetings import LONG_RUN, NAMES, TUNED_ON, WORDS_FILE, clips, load, write
from bench.probe import MeasuringViewer
from bench.relay_run import RELAY, run_conditions, serving_url, stop_relay, write_result
from bench.scoring import Event, wer
from bench.transcription import viewer_captions

_MAP = re.compile(rb"X-TIMESTAMP-MAP=MPEGTS:(\d+),LOCAL:([0-9:.]+)")


def run_relay(meeting_path: Path, feed_kind: str, extra: list[str]) -> dict[str, Any]:
    """One live run: the captions the viewer got (with arrivals), the relay's stamps, and the feed."""
    audio = load(meeting_path)
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        timings = Path(tmp) / "timings.jsonl"
        env = {**os.environ, "RELAY_TIMINGS": str(timings)}
        feed: StdinFeed | HlsFeed | BoothsFeed
        if feed_kind == "booths":
            feed = BoothsFeed(len(audio) / 16000).start()
            proc = subprocess.Popen([str(RELAY), "serve", feed.url, "--booths", "auto", "--port", "0", "--data",
                                     f"{tmp}/data", *extra], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
            url = _url(proc)
        elif feed_kind in ("stdin", "booths-stdin"):
            booths = _booth_tracks(len(audio)) if feed_kind == "booths-stdin" else None
            proc = subprocess.Popen([str(RELAY), "serve", "-", "--port", "0", "--data", f"{tmp}/data",
                                     *(["--booths", "auto"] if booths else []), *extra],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
            ready = threading.Event()
            feed = StdinFeed(proc, audio, ready, booths=booths).start()
            url = _url(proc)
            ready.set()
        else:
            feed = HlsFeed(audio).start()
            proc = subprocess.Popen([str(RELAY), "serve", feed.url, "--port", "0", "--data", f"{tmp}/data", *extra],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
            url = _url(proc)
        probe = MeasuringViewer(url.replace("http", "ws", 1) + "/ws")
        probe.start()
        try:
            if isinstance(feed, StdinFeed):
                feed.done.wait(len(audio) / 16000 + 120)
            else:
                time.sleep(max(0.0, feed.server.ends_at - time.monotonic()))
                feed.stream_offset_s = _stream_offset(url)
            probe.ended.wait(60)
            time.sleep(2.0)
        finally:
            result = probe.stop()
            stop_relay(proc)
            if not isinstance(feed, StdinFeed):
                feed.close()
        lines = [json.loads(line) for line in timings.read_text().splitlines()] if timings.exists() else []
    return {"captions": viewer_captions(result.arrivals), "timings": {t["id"]: t for t in lines},
            "feed": feed, "probe": {"reads": result.reads, "without_kernel_timestamp": result.reads_without_timestamp}}


def _booth_tracks(samples: int) -> dict[str, tuple[str, Any]]:
    """The interpreted event's three booths, cut to the floor meeting's length, with their Matroska language tags."""
    from bench.meetings import SPEECH_DIR

    return {f"booth-{lang}": (tag, load(SPEECH_DIR / "interpretation" / f"booth-{lang}.flac")[:samples])
            for lang, tag in (("en", "eng"), ("fr", "fra"), ("es", "spa"))}


def _url(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline().decode() if proc.stdout else ""
    if "viewers open" not in line:
        raise RuntimeError(f"relay did not start: {line!r}")
    return line.split("viewers open ", 1)[1].strip().rstrip("/")


def _stream_offset(url: str) -> float:
    """The HLS server's stream second at the relay's stream time 0, from a subtitle segment's timestamp map."""
    text = urllib.request.urlopen(f"{url}/hls/original.m3u8", timeout=10).read().decode()
    segment = next(line for line in text.splitlines() if line.endswith(".vtt"))
    body = urllib.request.urlopen(f"{url}/hls/{segment}", timeout=10).read()
    tick, local = _MAP.search(body).groups()
    local_s = sum(float(x) * 60**i for i, x in enumerate(reversed(local.decode().split(":"))))
    return int(tick) / 90_000 - local_s


def offline(name: str, events: list[Event], audio) -> dict[str, Any]:
    """Offline faster-whisper (beam 5, VAD) on each sentence alone: the WER ceiling (cached per meeting)."""
    cache = WORDS_FILE.parent.parent / "tmp" / "meetings" / f"{name}.offline.json"
    if cache.exists():
        return json.loads(cache.read_text())
    from faster_whisper import WhisperModel

    from relay.modelstore import resolve_model

    model = WhisperModel(str(resolve_model("base")), device="cpu", compute_type="int8")
    per_lang: dict[str, dict[str, list[str]]] = {}
    for event in (e for e in events if e.kind == "speech"):
        segments, _ = model.transcribe(audio[int(event.start * 16000):int(event.end * 16000)], beam_size=5, vad_filter=True)
        bucket = per_lang.setdefault(event.lang, {"refs": [], "hyps": []})
        bucket["refs"].append(event.text)
        bucket["hyps"].append(" ".join(s.text for s in segments))
    result = {"wer": {lang: round(100 * wer(b["refs"], b["hyps"]), 1) for lang, b in sorted(per_lang.items())}}
    cache.write_text(json.dumps(result))
    return result


def score(name: str, meeting: dict[str, Any], run: dict[str, Any], audio) -> dict[str, Any]:
    events = [Event(e["kind"], e["start"], e["end"], e.get("lang", ""), e.get("text", ""), e.get("id", ""))
              for e in meeting["events"]]
    feed = run["feed"]
    spans = speech_ends(events, audio)
    groups = utterances(run["captions"], feed.meeting_s)
    rows = final_delays(groups, events, spans, feed.spoken_at)
    table = clips()
    words = word_times(meeting, json.loads(WORDS_FILE.read_text()), table)
    result = {
        "final_delay_s": stats([r["delay"] for r in rows]),
        "final_delay_by_lang_s": {lang: stats([r["delay"] for r in rows if r["lang"] == lang])
                                  for lang in sorted({r["lang"] for r in rows})},
        "parts": breakdown(rows, run["timings"]),
        "word_delay_s": word_delays(words, run["captions"], feed.meeting_s, feed.spoken_at, meeting.get("clips", []), table)
        if words else "no word times (not built from clips)",
        "quality": quality(events, groups),
        # The long run repeats the visible meeting: its offline WER is the meeting's.
        "offline": offline(name, events, audio) if name != LONG_RUN else offline("meeting", events[: len(events) // 10], audio),
        "probe": run["probe"],
    }
    if meeting["seconds"] > 1200:
        result["drift"] = drift(rows)
    if isinstance(feed, StdinFeed):
        result["feed_fell_behind_schedule_s"] = round(feed.behind_s, 3)  # while the meeting was fed
        result["feed_fell_behind_in_lead_s"] = round(feed.behind_in_lead_s, 3)  # room tone, the relay starting
    if isinstance(feed, BoothsFeed) or (isinstance(feed, StdinFeed) and len(feed.audio) > 1):
        result["booths"] = booth_delays(run, feed)
    return result


def booth_delays(run: dict[str, Any], feed: BoothsFeed | StdinFeed) -> dict[str, Any]:
    """Each booth's final delay, from the end of the interpreter's speech (event.json's booth sentences)."""
    from bench.meetings import SPEECH_DIR

    event = json.loads((SPEECH_DIR / "interpretation" / "event.json").read_text(encoding="utf-8"))
    out = {}
    for lang, entries in event["booths"].items():
        channel = f"booth-{lang}"
        events = [Event("speech", e["start"], e["end"], lang, e["text"]) for e in entries
                  if e["end"] <= len(feed.audio[channel]) / 16000]
        spans = speech_ends(events, feed.audio[channel])
        rows = final_delays(utterances(run["captions"], feed.meeting_s, channel), events, spans, feed.spoken_at)
        out[channel] = {"final_delay_s": stats([r["delay"] for r in rows]),
                        "parts": breakdown(rows, run["timings"])["parts_s"] if rows else {}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meetings", nargs="+", default=list(NAMES), choices=[*NAMES, LONG_RUN])
    parser.add_argument("--feeds", nargs="+", default=["stdin", "hls"], choices=["stdin", "hls", "booths", "booths-stdin"],
                        help="booths: the interpreted event with its three booths as a live HLS master; booths-stdin: "
                             "the same four tracks as live Matroska on stdin (interpreted-floor only, both)")
    parser.add_argument("--relay-args", default="", help="extra arguments for relay serve (quoted)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    conditions = run_conditions()
    runs: dict[str, Any] = {}
    for name in args.meetings:
        path, meeting = write(name)
        audio = load(path)
        for feed in args.feeds:
            if feed.startswith("booths") and name != "interpreted-floor":
                continue
            run = run_relay(path, feed, args.relay_args.split())
            runs[f"{name}/{feed}"] = {"meeting_s": meeting["seconds"], "tuned_on": name == TUNED_ON,
                                      **score(name, meeting, run, audio)}
            print(name, feed, json.dumps(runs[f"{name}/{feed}"]["final_delay_s"]), flush=True)
    write_result({"benchmark": "latency", **conditions, "model": "base", "relay_args": args.relay_args,
                  "how": "live feed from the bench's clock (stdin in 20 ms chunks, WAV or with booths "
                         "Matroska, or a live HLS server with 2 s segments on 127.0.0.1); arrivals: kernel receive time at one viewer's socket",
                  "runs": runs}, args.out)


if __name__ == "__main__":
    main()
