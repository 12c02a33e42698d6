"""Scoring a latency run: final delays by the outside clock, their parts, word delays, WER, non-speech.

All times are Unix seconds (CLOCK_REALTIME): the feed's `spoken_at`, the viewer's kernel receive
stamps, and the relay's stage stamps (`RELAY_TIMINGS`, moved from its monotonic clock by the
offset each line carries).

- **Final delay** of a relay utterance: when its last final piece reached the viewer's socket,
  minus when the speech it covers ended (the end of the last reference sentence it overlaps, that
  sentence's speech located in the audio; a final cut mid-speech at the 15 s cap is timed from its
  own end).
- **Its parts**, along the path that made it: `detect` (end of speech to the snapshot offered:
  VAD hang-over, the silence waited for, reading), `wait` (offered to its decode started: a
  worker busy), `decode`, `hold` (decoded, waiting for the end of speech to be confirmed),
  `captions` (split and machine translation), `publish` (store and fan-out), `deliver` (to the
  viewer's socket). They add up to the delay.
- **Word delay**: per reference word, from the end of the word (the clip's offline alignment) to
  the first caption (partial or final) on the viewer's socket that shows it right: the caption's
  words, aligned to the reference sentence's, match it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.scoring import Event, assign_finals, normalise, percentile, speech_span_s, wer, words_in_non_speech

PARTS = ("detect", "wait", "decode", "hold", "captions", "publish", "deliver")
RATE = 16_000


def stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(percentile(values, 50), 3), "p95": round(percentile(values, 95), 3),
            "max": round(max(values), 3)}


def speech_ends(events: list[Event], audio: np.ndarray) -> dict[int, tuple[float, float]]:
    """Per speech event: where its speech really starts and ends (meeting seconds), from the audio."""
    return {i: speech_span_s(audio[int(e.start * RATE):int(e.end * RATE)], e.start)
            for i, e in enumerate(events) if e.kind == "speech"}


def utterances(captions: list[dict[str, Any]], meeting_s: Callable[[float], float], channel: str = "floor"
               ) -> dict[str, dict[str, Any]]:
    """A channel's finals grouped by utterance: span on the meeting's clock, text, last arrival."""
    grouped: dict[str, dict[str, Any]] = {}
    for c in captions:
        if c["type"] != "final" or c.get("channel", "floor") != channel or not c["text"]:
            continue
        base = c["id"].split(".")[0]
        u = grouped.setdefault(base, {"id": base, "start": meeting_s(c["start"]), "end": meeting_s(c["end"]),
                                      "text": [], "lang": c["lang"], "arrival": c["arrival"]})
        u["start"], u["end"] = min(u["start"], meeting_s(c["start"])), max(u["end"], meeting_s(c["end"]))
        u["text"].append(c["text"])
        u["arrival"] = max(u["arrival"], c["arrival"])
    return grouped


def final_delays(groups: dict[str, dict[str, Any]], events: list[Event], spans: dict[int, tuple[float, float]],
                 spoken_at: Callable[[float], float]) -> list[dict[str, Any]]:
    rows = []
    for u in groups.values():
        ends = [spans[i][1] for i, e in enumerate(events)
                if e.kind == "speech" and min(u["end"], e.end) - max(u["start"], e.start) > 0]
        if not ends:
            continue  # words on non-speech: counted elsewhere
        end = max(ends)
        if end > u["end"] + 0.5:
            end = u["end"]  # cut mid-speech (the 15 s cap): timed from the cut
        rows.append({"id": u["id"], "lang": u["lang"], "speech_end": end, "spoken_end_at": spoken_at(end),
                     "delay": u["arrival"] - spoken_at(end), "arrival": u["arrival"]})
    return rows


def parts(row: dict[str, Any], timing: dict[str, Any] | None) -> dict[str, float] | None:
    """The delay of one utterance split along the path that made its final (None without stamps)."""
    if timing is None or "decoded" not in timing:
        return None
    shift = timing["realtime_minus_monotonic"]
    at = {k: v + shift for k, v in timing.items() if isinstance(v, float) and k not in ("speech_end_s", "audio_s")
          and not k.endswith("_decode_s") and k != "realtime_minus_monotonic"}
    kind = "final" if "final_decode_start" in at else "settled"
    offered = at.get(f"{kind}_offered", at.get("final_offered"))
    start, end = at.get(f"{kind}_decode_start"), at.get(f"{kind}_decode_end")
    translated = at.get("translated", at.get("to_captions", at["decoded"]))
    if offered is None or start is None or end is None:
        return None
    return {
        "detect": offered - row["spoken_end_at"], "wait": start - offered, "decode": end - start,
        "hold": at["decoded"] - end, "captions": translated - at["decoded"],
        "publish": at["published"] - translated, "deliver": row["arrival"] - at["published"],
        "reused_settled": kind == "settled", "audio_s": timing.get("audio_s"),
        "workers_busy_at_final": timing.get("workers_busy"), "partials_running_at_final": timing.get("partials_running"),
    }


def breakdown(rows: list[dict[str, Any]], timings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    split = [(row, parts(row, timings.get(row["id"]))) for row in rows]
    split = [(row, p) for row, p in split if p is not None]
    if not split:
        return {"n": 0}
    p95 = percentile([row["delay"] for row, _ in split], 95)
    worst = [p for row, p in split if row["delay"] >= p95]
    largest = [max(PARTS, key=lambda k: p[k]) for p in worst]
    return {
        "n": len(split),
        "parts_s": {k: stats([p[k] for _, p in split]) for k in PARTS},
        "reused_settled_decode": sum(p["reused_settled"] for _, p in split),
        "p95_utterances": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in p.items()} for p in worst],
        "largest_part_at_p95": {k: largest.count(k) for k in sorted(set(largest))},
        "decode_s_by_audio_s": [[p["audio_s"], round(p["decode"], 3)] for _, p in split],
    }


def word_times(meeting: dict[str, Any], clip_words: dict[str, list[list[Any]]], clips: dict[str, dict[str, Any]]
               ) -> list[dict[str, Any]]:
    """Reference words with the meeting second each ends: the clip's text aligned to its offline word times."""
    out = []
    for n, placed in enumerate(meeting.get("clips", [])):
        cid, offset = placed["clip"], placed["start"]
        if cid not in clip_words or cid not in clips:
            continue
        ref = normalise(clips[cid]["text"]).split()
        aligned = [(normalise(w).split() or [""])[0] for w, _, _ in clip_words[cid]]
        ends = [end for _, _, end in clip_words[cid]]
        times: list[float | None] = [None] * len(ref)
        for block in difflib.SequenceMatcher(a=ref, b=aligned, autojunk=False).get_matching_blocks():
            for k in range(block.size):
                times[block.a + k] = ends[block.b + k]
        known = [(i, t) for i, t in enumerate(times) if t is not None]
        if not known:
            continue
        for i in range(len(ref)):  # a word the alignment missed: between its neighbours
            if times[i] is None:
                times[i] = float(np.interp(i, [k for k, _ in known], [t for _, t in known]))
        out += [{"word": w, "index": i, "clip": cid, "placed": n, "lang": clips[cid]["lang"], "end": offset + times[i]}
                for i, w in enumerate(ref)]
    return out


def word_delays(words: list[dict[str, Any]], captions: list[dict[str, Any]], meeting_s: Callable[[float], float],
                spoken_at: Callable[[float], float], placed: list[dict[str, Any]], clips: dict[str, dict[str, Any]]
                ) -> dict[str, Any]:
    """Per language: from each word's end to the first caption on the socket that shows it right.

    Words are told apart by their placement (`placed`: the clip's number in the meeting), so a clip
    heard twice (the looped long run) is timed each time from its own words."""
    by_placement: dict[int, list[dict[str, Any]]] = {}
    for w in words:
        by_placement.setdefault(w["placed"], []).append(w)
    spans = {n: (p["start"], p["start"] + clips[p["clip"]]["seconds"]) for n, p in enumerate(placed) if p["clip"] in clips}
    first_shown: dict[tuple[int, int], float] = {}
    floor = sorted((c for c in captions if c["type"] in ("partial", "final") and c.get("channel", "floor") == "floor"
                    and c["text"]), key=lambda c: c["arrival"])
    for c in floor:
        start, end = meeting_s(c["start"]) - 0.5, meeting_s(c["end"]) + 0.5
        hyp = normalise(c["text"]).split()
        for n, (a, b) in spans.items():
            if min(end, b) - max(start, a) <= 0:
                continue
            ref = [w["word"] for w in by_placement.get(n, [])]
            for block in difflib.SequenceMatcher(a=ref, b=hyp, autojunk=False).get_matching_blocks():
                for k in range(block.size):
                    first_shown.setdefault((n, block.a + k), c["arrival"])
    per_lang: dict[str, list[float]] = {}
    missing: dict[str, int] = {}
    for w in words:
        shown = first_shown.get((w["placed"], w["index"]))
        if shown is None:
            missing[w["lang"]] = missing.get(w["lang"], 0) + 1
            continue
        per_lang.setdefault(w["lang"], []).append(shown - spoken_at(w["end"]))
    return {lang: {**stats(v), "never_shown_right": missing.get(lang, 0)} for lang, v in sorted(per_lang.items())}


def quality(events: list[Event], groups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """WER per language of the floor's finals, language right, words in non-speech."""
    finals = [{"start": u["start"], "end": u["end"], "text": " ".join(u["text"]), "lang": u["lang"]} for u in groups.values()]
    per_lang: dict[str, dict[str, list[str]]] = {}
    right = 0
    wrong: list[list[str]] = []
    for index, got in assign_finals(events, finals).items():
        event = events[index]
        bucket = per_lang.setdefault(event.lang, {"refs": [], "hyps": []})
        bucket["refs"].append(event.text)
        bucket["hyps"].append(" ".join(f["text"] for f in got))
        if normalise(bucket["refs"][-1]) != normalise(bucket["hyps"][-1]):
            wrong.append([event.lang, event.text, bucket["hyps"][-1]])
        right += bool(got) and max([f["lang"] for f in got], key=[f["lang"] for f in got].count) == event.lang
    return {"wer": {lang: round(100 * wer(b["refs"], b["hyps"]), 1) for lang, b in sorted(per_lang.items())},
            "language_right": right, "sentences": sum(e.kind == "speech" for e in events),
            "words_in_non_speech": words_in_non_speech(events, finals), "sentences_not_exact": wrong}


def drift(rows: list[dict[str, Any]], window_s: float = 600.0) -> dict[str, Any]:
    """Final delay in the first and last `window_s` of a long run."""
    if not rows:
        return {}
    last = max(r["speech_end"] for r in rows)
    return {"first": stats([r["delay"] for r in rows if r["speech_end"] <= window_s]),
            "last": stats([r["delay"] for r in rows if r["speech_end"] >= last - window_s])}
