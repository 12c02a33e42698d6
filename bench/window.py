"""The encoder window relay pads each utterance to: accuracy and decode time per choice.

    python -m bench.window [--out FILE] [--utterances N] [--event meeting|interpretation]

Whisper pads every input to 30 s and each decode pays the full encoder; CTranslate2 accepts
shorter inputs. This decodes every speech event of the meeting (cut at its meeting.json span)
at final quality (relay's WhisperEngine, beam 5, language detected) with the features padded to
each candidate window, in one process with one model, and reports WER per language and the
median decode time. `--event interpretation` does the same on the interpreted event's four
channels (floor sentences with the language chosen among en/fr/es, booth utterances decoded in
the booth's language), WER per channel. relay's window is DecodeSettings.min_window_s, and 2 s
past the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path
from typing import Any

from bench.relay_run import run_conditions, write_result
from bench.scoring import SPEECH_DIR, load_events, wer
from relay.modelstore import resolve_model
from relay.whisper_engine import Context, DecodeSettings, WhisperEngine

_EVENT_LANGUAGES = ("en", "fr", "es")
_PRE_PAD_S, _END_PAD_S = 0.4, 0.2  # as the segmenter cuts an utterance

# (label, min_window_s, window_headroom_s)
WINDOWS = (
    ("30 s (Whisper's default)", 30.0, 2.0),
    ("utterance + 2 s", 0.0, 2.0),
    ("at least 6 s", 6.0, 2.0),
    ("at least 8 s", 8.0, 2.0),
    ("at least 10 s", 10.0, 2.0),
    ("at least 12 s", 12.0, 2.0),
    ("at least 15 s", 15.0, 2.0),
)
_EVENT_WINDOWS = ("utterance + 2 s", "at least 6 s", "at least 8 s", "at least 10 s", "at least 15 s")


def _meeting_items(limit: int | None) -> list[tuple[str, Any, str, Context | None]]:
    """(group, samples, reference, context) for every speech event of the meeting."""
    from faster_whisper.audio import decode_audio

    audio = decode_audio(str(SPEECH_DIR / "meeting.flac"))
    speech = [e for e in load_events() if e.kind == "speech"][:limit]
    return [(e.lang, audio[int(e.start * 16000) : int(e.end * 16000)], e.text, None) for e in speech]


def _event_items(limit: int | None) -> list[tuple[str, Any, str, Context | None]]:
    """(channel, samples, reference, context) for the interpreted event's utterances."""
    from faster_whisper.audio import decode_audio

    from bench.interpretation_scoring import EVENT_DIR, load_event

    event = load_event()

    def cut(audio: Any, start: float, end: float) -> Any:
        return audio[max(0, int((start - _PRE_PAD_S) * 16000)) : int((end + _END_PAD_S) * 16000)]

    floor = decode_audio(str(EVENT_DIR / "floor.flac"))
    items = [("floor", cut(floor, u["start"], u["end"]), u["text"], Context(None, only=_EVENT_LANGUAGES))
             for u in event["utterances"][:limit]]
    for lang, utterances in sorted(event["booths"].items()):
        audio = decode_audio(str(EVENT_DIR / f"booth-{lang}.flac"))
        items += [(f"booth-{lang}", cut(audio, u["start"], u["end"]), u["text"], Context(lang, only=(lang,)))
                  for u in utterances[:limit]]
    return items


def run(model: str, limit: int | None, event: str) -> dict[str, Any]:
    """Decode the utterances under every window."""
    items = _meeting_items(limit) if event == "meeting" else _event_items(limit)
    windows = WINDOWS if event == "meeting" else [w for w in WINDOWS if w[0] in _EVENT_WINDOWS]
    engine = WhisperEngine(resolve_model(model), DecodeSettings())
    engine.warm_up()
    rows = []
    try:
        for label, min_window_s, headroom_s in windows:
            engine.settings = dataclasses.replace(DecodeSettings(), min_window_s=min_window_s,
                                                  window_headroom_s=headroom_s)
            per_lang: dict[str, dict[str, list[str]]] = {}
            seconds = []
            for group, samples, reference, context in items:
                decoded = engine.decode_blocking(samples, True, context)
                seconds.append(decoded.seconds)
                bucket = per_lang.setdefault(group, {"refs": [], "hyps": []})
                bucket["refs"].append(reference)
                bucket["hyps"].append(decoded.text)
            rows.append({
                "window": label, "min_window_s": min_window_s, "headroom_s": headroom_s,
                "wer": {lang: round(100 * wer(b["refs"], b["hyps"]), 1) for lang, b in sorted(per_lang.items())},
                "decode_s_p50": round(statistics.median(seconds), 3),
            })
    finally:
        engine.close()
    return {"model": model, "event": event, "utterances": len(items), "beam_size": DecodeSettings().final_beam_size, "windows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--utterances", type=int, default=None, help="only the first N (smoke test)")
    parser.add_argument("--event", choices=["meeting", "interpretation"], default="meeting")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    conditions = run_conditions()
    write_result({**conditions, **run(args.model, args.utterances, args.event)}, args.out)


if __name__ == "__main__":
    main()
