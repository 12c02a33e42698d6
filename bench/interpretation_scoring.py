"""Scoring an interpreted event: what a viewer of each language read, and when each channel's finals came.

Pure functions over the messages a measuring viewer got (each with its `arrival`, the kernel's
receive time) and the event's timings (../shared/speech/interpretation/event.json); used by
bench.interpretation, which runs the relay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sacrebleu.metrics.chrf import CHRF

from bench.scoring import SPEECH_DIR, normalise, percentile
from bench.translation import fold_accents

EVENT_DIR = SPEECH_DIR / "interpretation"
LANGS = ("en", "fr", "es")
FLOOR = "floor"
# The offline figures (Whisper base per utterance, accents folded): today's MT, and the target.
OFFLINE_CHRF = {"mt_of_floor": {"en": 64.7, "fr": 60.4, "es": 63.1}, "booth": {"en": 89.5, "fr": 87.7, "es": 82.5}}


@dataclass(frozen=True, slots=True)
class Utterance:
    """One stretch of speech in one channel, as event.json times it."""

    channel: str
    n: int
    start: float
    end: float
    kind: str = "speech"  # floor: "speech"; booths: "interpretation" or "relay"


def channel_name(lang: str) -> str:
    return f"booth-{lang}"


def load_event(path: Path = EVENT_DIR / "event.json") -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def channel_utterances(
    event: dict[str, Any], seconds: float | None, loops: int, loop_s: float, begun: bool = False
) -> list[Utterance]:
    """Every channel's utterances ending within the first `seconds` (`begun`: starting within
    them, for where a channel speaks), repeated `loops` times `loop_s` apart."""
    one = [Utterance(FLOOR, u["n"], u["start"], u["end"]) for u in event["utterances"]]
    for lang, items in event["booths"].items():
        one += [Utterance(channel_name(lang), b["n"], b["start"], b["end"], b["kind"]) for b in items]
    one = [u for u in one if seconds is None or (u.start if begun else u.end) <= seconds]
    return [Utterance(u.channel, u.n, u.start + k * loop_s, u.end + k * loop_s, u.kind) for k in range(loops) for u in one]


def reference_text(event: dict[str, Any], lang: str, seconds: float | None, loops: int) -> str:
    """The human text in `lang` of every floor sentence (within the first `seconds`), joined, `loops` times."""
    refs = [u["refs"][lang] for u in event["utterances"] if seconds is None or u["end"] <= seconds]
    return " ".join([" ".join(refs)] * loops)


def chrf_folded(hypothesis: str, reference: str) -> float:
    """chrF of one document against one reference, accents folded on both sides."""
    return round(CHRF().corpus_score([fold_accents(hypothesis)], [[fold_accents(reference)]]).score, 1)


def length_ratio(hypothesis: str, reference: str) -> float | None:
    """Characters of what was read over characters of the reference (whitespace runs count as one)."""
    ref = len(" ".join(reference.split()))
    return round(len(" ".join(hypothesis.split())) / ref, 3) if ref else None


def track_texts(messages: list[dict[str, Any]], lang: str) -> list[str]:
    """What a viewer of `lang` reads: the texts of its track messages in seq order, each seq once."""
    by_seq = {m["seq"]: m for m in messages if m.get("type") == "track" and m.get("lang") == lang}
    return [by_seq[seq]["text"] for seq in sorted(by_seq)]


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def assign_to_utterances(utterances: list[Utterance], captions: list[dict[str, Any]]) -> dict[int, list[dict]]:
    """Per utterance (index): the captions of its channel that overlap it most, or, if none does,
    every caption of its channel overlapping it at all (a caption running two together)."""
    assigned: dict[int, list[dict]] = {i: [] for i in range(len(utterances))}
    touching: dict[int, list[dict]] = {i: [] for i in range(len(utterances))}
    of_channel: dict[str, list[int]] = {}
    for i, u in enumerate(utterances):
        of_channel.setdefault(u.channel, []).append(i)
    for caption in captions:
        overlaps = {i: _overlap(caption["start"], caption["end"], utterances[i].start, utterances[i].end)
                    for i in of_channel.get(caption.get("channel", FLOOR), [])}
        overlaps = {i: o for i, o in overlaps.items() if o > 0}
        if overlaps:
            assigned[max(overlaps, key=lambda i: overlaps[i])].append(caption)
            for i in overlaps:
                touching[i].append(caption)
    return {i: got or touching[i] for i, got in assigned.items()}


def silent_booth_finals(utterances: list[Utterance], finals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Booth finals lying mostly (over half their span) outside every utterance of their booth."""
    silent = []
    for final in finals:
        channel = final.get("channel", FLOOR)
        if channel == FLOOR:
            continue
        span = max(final["end"] - final["start"], 1e-6)
        inside = sum(_overlap(final["start"], final["end"], u.start, u.end) for u in utterances if u.channel == channel)
        if inside / span <= 0.5:
            silent.append(final)
    return silent


def word_count(finals: list[dict[str, Any]]) -> int:
    return sum(len(normalise(f["text"]).split()) for f in finals)


def silent_booth_words(utterances: list[Utterance], finals: list[dict[str, Any]], booths: list[str]) -> dict[str, int]:
    """Per booth: words of its finals captioned where event.json has it silent."""
    silent = silent_booth_finals(utterances, finals)
    return {booth: word_count([f for f in silent if f["channel"] == booth]) for booth in booths}


def dropout_window(event: dict[str, Any], loops: int, loop_s: float, lag_s: float = 4.0) -> list[tuple[float, float]]:
    """Where the dropout booth would have interpreted: its floor sentences, plus `lag_s`, in every loop."""
    ns = set(event.get("dropout", {}).get("utterances", []))
    spans = [(u["start"], u["end"] + lag_s) for u in event["utterances"] if u["n"] in ns]
    return [(a + k * loop_s, b + k * loop_s) for k in range(loops) for a, b in spans]


def _stats(values: list[float]) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return {"p50": r(percentile(values, 50)), "p95": r(percentile(values, 95)), "max": r(max(values, default=None)),
            "n": len(values)}


def row_key(u: Utterance) -> str:
    """Delays are reported per channel, a booth relaying the floor apart."""
    return f"{u.channel} (relay)" if u.kind == "relay" else u.channel


def channel_delays(
    utterances: list[Utterance], spans: list[tuple[float, float]], captions: list[dict[str, Any]], zero: float
) -> dict[str, Any]:
    """Per channel (and booth relay): final delay after speech end, first partial after speech start."""
    finals = [c for c in captions if c["type"] == "final" and c["text"].strip()]
    partials = [c for c in captions if c["type"] == "partial" and c["text"].strip()]
    got_final, got_partial = assign_to_utterances(utterances, finals), assign_to_utterances(utterances, partials)
    rows: dict[str, dict[str, list]] = {}
    for i, u in enumerate(utterances):
        row = rows.setdefault(row_key(u), {"final": [], "partial": [], "missed": [], "timeline": []})
        if got_final[i]:
            delay = max(c["arrival"] for c in got_final[i]) - zero - spans[i][1]
            row["final"].append(delay)
            row["timeline"].append((spans[i][1], delay))
        else:
            row["missed"].append(u.n)
        if got_partial[i]:
            row["partial"].append(min(c["arrival"] for c in got_partial[i]) - zero - spans[i][0])
    out: dict[str, Any] = {}
    for key, row in sorted(rows.items()):
        channel = key.split(" ")[0]
        out[key] = {"utterances": len(row["final"]) + len(row["missed"]), "final_delay_s": _stats(row["final"]),
                    "first_partial_delay_s": _stats(row["partial"]), "without_final": row["missed"],
                    "keeping_up": keeping_up(row["timeline"]),
                    "finals_of_channel": sum(1 for c in finals if c.get("channel", FLOOR) == channel),
                    "partials_of_channel": sum(1 for c in partials if c.get("channel", FLOOR) == channel)}
    return out


def keeping_up(timeline: list[tuple[float, float]]) -> dict[str, Any]:
    """Final delay in the first and last third of the run, and its trend (seconds per minute)."""
    if len(timeline) < 3:
        return {"first_third_p50": None, "last_third_p50": None, "slope_s_per_min": None}
    timeline = sorted(timeline)
    third = len(timeline) // 3
    ends, delays = np.array([t for t, _ in timeline]), np.array([d for _, d in timeline])
    slope = float(np.polyfit(ends / 60.0, delays, 1)[0])
    return {"first_third_p50": round(float(np.median(delays[:third])), 2),
            "last_third_p50": round(float(np.median(delays[-third:])), 2), "slope_s_per_min": round(slope, 3)}


def drift(utterances: list[Utterance], spans: list[tuple[float, float]], captions: list[dict], zero: float,
          total_s: float) -> dict[str, Any]:
    """Per channel: final delay in the first and last ten minutes of a looped run."""
    def window(first: float, last: float) -> dict[str, Any]:
        keep = [i for i, s in enumerate(spans) if first <= s[1] <= last]
        return channel_delays([utterances[i] for i in keep], [spans[i] for i in keep], captions, zero)

    def brief(delays: dict[str, Any]) -> dict[str, Any]:
        return {k: v["final_delay_s"] for k, v in delays.items()}

    return {"audio_s": round(total_s, 1), "first_10min": brief(window(0.0, 600.0)),
            "last_10min": brief(window(total_s - 600.0, total_s))}


def score_tracks(event: dict[str, Any], messages: list[dict[str, Any]], exported: dict[str, list[dict]],
                 seconds: float | None, loops: int) -> dict[str, Any]:
    """Per language: chrF and length of what its viewer read, by source, and the export cross-check."""
    out = {}
    for lang in LANGS:
        read, reference = track_texts(messages, lang), reference_text(event, lang, seconds, loops)
        tracks = [m for m in messages if m.get("type") == "track" and m.get("lang") == lang]
        sources = {s: len({m["seq"] for m in tracks if m["source"] == s}) for s in ("floor", "interpretation", "mt")}
        out[lang] = {"chrf": chrf_folded(" ".join(read), reference),
                     "offline_mt_of_floor": OFFLINE_CHRF["mt_of_floor"][lang], "offline_booth": OFFLINE_CHRF["booth"][lang],
                     "length_ratio": length_ratio(" ".join(read), reference), "captions_by_source": sources,
                     "export_matches_viewer": [r["text"] for r in exported[lang]] == read}
    return out


def track_delays(utterances: list[Utterance], floor_spans: dict[int, tuple[float, float]],
                 messages: list[dict[str, Any]], zero: float) -> dict[str, Any]:
    """Per language and source: when the track caption serving a floor sentence reached the viewer,
    after the end of that sentence's speech on the floor (a floor final id is placed by overlap)."""
    floor_finals = [m for m in messages if m.get("type") == "final" and m.get("channel", FLOOR) == FLOOR
                    and m["text"].strip()]
    sentence_of: dict[str, int] = {}
    for i, got in assign_to_utterances(utterances, floor_finals).items():
        for final in got:
            sentence_of.setdefault(final["id"], i)
    out: dict[str, Any] = {}
    for lang in LANGS:
        served: dict[int, tuple[float, str]] = {}  # sentence -> (latest arrival, source)
        for m in (m for m in messages if m.get("type") == "track" and m.get("lang") == lang):
            for floor_id in m.get("covers", []):
                i = sentence_of.get(floor_id)
                if i is not None and m["arrival"] > served.get(i, (0.0, ""))[0]:
                    served[i] = (m["arrival"], m["source"])
        delays: dict[str, list[float]] = {}
        for i, (arrival, source) in served.items():
            delays.setdefault(source, []).append(arrival - zero - floor_spans[i][1])
        out[lang] = {source: _stats(values) for source, values in sorted(delays.items())}
    return out
