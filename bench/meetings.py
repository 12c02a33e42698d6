"""Test meetings for the latency benchmark, built from ../shared/speech, and each clip's word times.

    python -m bench.meetings --align      (re)compute bench/data/clip_words.json (a few minutes)
    python -m bench.meetings NAME...      write bench/tmp/meetings/NAME.flac and NAME.json

The visible meeting (`meeting`: ../shared/speech/meeting.flac, the one the policy was tuned on)
and others of the same kind the tuning never saw, built deterministically (seeded by name):

- `shuffle-a`, `shuffle-b`: the clips in other orders and groupings: a speaker says 2-4
  sentences of one language back to back (0.5-1.0 s pauses), 1.2-2.5 s between speakers, one
  burst of noise or a tone somewhere; pauses hold faint room noise, never digital silence.
- `long-talk`: the long clips (JFK, the LibriVox excerpts, the 9-15 s prompts) back to back with
  0.5-0.8 s pauses: long utterances, little time to decode between them.
- `held-out`: another shuffle, scored only once the policy was fixed.
- `interpreted-floor`: the first 180 s of the interpreted event's floor channel
  (interpretation/floor.flac, its sentences from event.json).

A meeting's JSON has `events` like meeting.json's (speech with `id`, `lang`, `text`, clip
`start`/`end`; silence, noise, music) and `clips`: where each clip was put, so each word's time
can be looked up in clip_words.json (faster-whisper base with `word_timestamps`, in the clip's
own language: an offline alignment of the recording).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import av
import numpy as np

from bench.scoring import SPEECH_DIR

RATE = 16_000
OUT_DIR = Path(__file__).resolve().parent.parent / "bench" / "tmp" / "meetings"
WORDS_FILE = Path(__file__).resolve().parent / "data" / "clip_words.json"
NAMES = ("meeting", "shuffle-a", "shuffle-b", "long-talk", "interpreted-floor", "held-out")
LONG_RUN = "meeting-30min"  # the visible meeting ten times over (29.4 min): for drift, run on its own
TUNED_ON = "meeting"
_ROOM_RMS = 0.0006  # about -64 dBFS: a quiet room, not digital silence
_LONG = ("en-jfk", "en-librivox-0870", "en-librivox-0880", "en-librivox-0890", "en-ast-conf-usermenu",
         "en-ast-vm-msginstruct", "en-ast-dir-intro", "es-ast-vm-forwardoptions", "es-ast-ss-noservice",
         "fr-ast-queue-periodic-announce", "fr-ast-vm-review", "es-ast-confbridge-pin-bad")


def clips() -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in json.loads((SPEECH_DIR / "clips.json").read_text(encoding="utf-8"))["clips"]}


def load(path: Path) -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path))


def build(name: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The audio and the event list of meeting `name`."""
    if name == "meeting":
        meeting = json.loads((SPEECH_DIR / "meeting.json").read_text(encoding="utf-8"))
        by_text = {c["text"]: c["id"] for c in clips().values()}
        placed = [{"clip": by_text.get(e["text"], e.get("id", "")), "start": e["start"]}
                  for e in meeting["events"] if e["kind"] == "speech"]
        return load(SPEECH_DIR / "meeting.flac"), {"events": meeting["events"], "clips": placed}
    if name == "interpreted-floor":
        return _interpreted_floor(180.0)
    if name == LONG_RUN:
        return _looped(build("meeting"), 10)
    rng = random.Random(name)
    table = clips()
    if name == "long-talk":
        order = [[cid] for cid in rng.sample(_LONG, len(_LONG))]
        return _assemble(order, table, rng, gap_s=(0.5, 0.8), between_s=(0.5, 0.8), non_speech=False)
    chosen = [cid for cid in table if cid not in ("en-jfk",)]
    rng.shuffle(chosen)
    chosen = chosen[:26]
    blocks: list[list[str]] = []
    for lang in ("en", "fr", "es"):
        mine = [cid for cid in chosen if table[cid]["lang"] == lang]
        while mine:
            size = rng.randint(2, 4)
            blocks.append(mine[:size])
            mine = mine[size:]
    rng.shuffle(blocks)
    return _assemble(blocks, table, rng, gap_s=(0.5, 1.0), between_s=(1.2, 2.5), non_speech=True)


def _assemble(blocks: list[list[str]], table: dict[str, dict[str, Any]], rng: random.Random, *,
              gap_s: tuple[float, float], between_s: tuple[float, float], non_speech: bool
              ) -> tuple[np.ndarray, dict[str, Any]]:
    noise = np.random.default_rng(rng.randrange(2**32))
    pieces: list[np.ndarray] = []
    events: list[dict[str, Any]] = []
    placed: list[dict[str, Any]] = []
    position = 0

    def add(samples: np.ndarray, event: dict[str, Any]) -> None:
        nonlocal position
        start = position / RATE
        pieces.append(samples.astype(np.float32))
        position += len(samples)
        events.append({**event, "start": round(start, 3), "end": round(position / RATE, 3)})

    def pause(seconds: float) -> None:
        add(noise.standard_normal(int(seconds * RATE)) * _ROOM_RMS, {"kind": "silence"})

    pause(1.5)
    burst_at = rng.randrange(1, len(blocks)) if non_speech and len(blocks) > 1 else -1
    for index, block in enumerate(blocks):
        if index == burst_at:
            if rng.random() < 0.5:
                add(noise.standard_normal(3 * RATE) * 0.05, {"kind": "noise"})
            else:
                t = np.arange(2 * RATE) / RATE
                add(0.1 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 2 * t) > 0), {"kind": "music"})
            pause(rng.uniform(*between_s))
        for number, cid in enumerate(block):
            clip = table[cid]
            placed.append({"clip": cid, "start": round(position / RATE, 3)})
            add(load(SPEECH_DIR / clip["path"]), {"kind": "speech", "id": cid, "lang": clip["lang"], "text": clip["text"]})
            pause(rng.uniform(*(gap_s if number < len(block) - 1 else between_s)))
    pause(2.0)
    return np.concatenate(pieces), {"events": events, "clips": placed}


def _looped(one: tuple[np.ndarray, dict[str, Any]], times: int) -> tuple[np.ndarray, dict[str, Any]]:
    audio, meta = one
    length = len(audio) / RATE
    events = [{**e, "start": e["start"] + k * length, "end": e["end"] + k * length}
              for k in range(times) for e in meta["events"]]
    placed = [{**c, "start": c["start"] + k * length} for k in range(times) for c in meta["clips"]]
    return np.tile(audio, times), {"events": events, "clips": placed}


def _interpreted_floor(seconds: float) -> tuple[np.ndarray, dict[str, Any]]:
    directory = SPEECH_DIR / "interpretation"
    audio = load(directory / "floor.flac")[: int(seconds * RATE)]
    event = json.loads((directory / "event.json").read_text(encoding="utf-8"))
    events = [{"kind": "speech", "id": f"floor-{u['n']}", "lang": u["lang"], "text": u["text"],
               "start": u["start"], "end": u["end"]} for u in event["utterances"] if u["end"] <= seconds]
    return audio, {"events": events, "clips": [], "note": "word times: none (not built from clips)"}


def write(name: str, directory: Path = OUT_DIR) -> tuple[Path, dict[str, Any]]:
    """Write meeting `name` as 16 kHz FLAC and JSON (kept: a later call reuses them)."""
    directory.mkdir(parents=True, exist_ok=True)
    flac, described = directory / f"{name}.flac", directory / f"{name}.json"
    if flac.exists() and described.exists():
        return flac, json.loads(described.read_text(encoding="utf-8"))
    audio, meta = build(name)
    meta = {"name": name, "seconds": round(len(audio) / RATE, 3), "sample_rate_hz": RATE, **meta}
    write_flac(audio, flac)
    described.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return flac, meta


def align_clips() -> dict[str, list[list[Any]]]:
    """Each clip's words with their times (offline, faster-whisper base, `word_timestamps`)."""
    from faster_whisper import WhisperModel

    from relay.modelstore import resolve_model

    model = WhisperModel(str(resolve_model("base")), device="cpu", compute_type="int8")
    words: dict[str, list[list[Any]]] = {}
    for cid, clip in sorted(clips().items()):
        segments, _ = model.transcribe(str(SPEECH_DIR / clip["path"]), language=clip["lang"], beam_size=5,
                                       word_timestamps=True, condition_on_previous_text=False, vad_filter=False)
        words[cid] = [[w.word.strip(), round(w.start, 3), round(w.end, 3)] for s in segments for w in s.words or []]
    return words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=[])
    parser.add_argument("--align", action="store_true", help="recompute bench/data/clip_words.json")
    args = parser.parse_args()
    if args.align:
        WORDS_FILE.write_text(json.dumps(align_clips(), ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    for name in args.names:
        path, meta = write(name)
        print(path, meta["seconds"], "s,", sum(e["kind"] == "speech" for e in meta["events"]), "sentences")


if __name__ == "__main__":
    main()


def write_flac(samples: np.ndarray, path: Path) -> None:
    """16 kHz mono float samples as a FLAC file."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=RATE, layout="mono")
        data = np.clip(samples * 32767, -32768, 32767).astype(np.int16)
        for start in range(0, len(data), RATE):
            frame = av.AudioFrame.from_ndarray(data[start : start + RATE].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
