"""The encoder window relay pads each utterance to: accuracy and decode time per choice.

    python -m bench.window [--out FILE] [--utterances N]

Whisper pads every input to 30 s and each decode pays the full encoder; CTranslate2 accepts
shorter inputs. This decodes every speech event of the meeting (cut at its meeting.json span)
at final quality (relay's WhisperEngine, beam 5, language detected) with the features padded to
each candidate window, in one process with one model, and reports WER per language and the
median decode time. relay uses "at least 15 s, and 2 s past the end" (DecodeSettings).
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
from relay.whisper_engine import DecodeSettings, WhisperEngine

# (label, min_window_s, window_headroom_s)
WINDOWS = (
    ("30 s (Whisper's default)", 30.0, 2.0),
    ("utterance + 2 s", 0.0, 2.0),
    ("at least 6 s", 6.0, 2.0),
    ("at least 8 s", 8.0, 2.0),
    ("at least 12 s", 12.0, 2.0),
    ("at least 15 s (relay)", 15.0, 2.0),
)


def run(model: str, limit: int | None) -> dict[str, Any]:
    """Decode the meeting's utterances under every window."""
    from faster_whisper.audio import decode_audio

    audio = decode_audio(str(SPEECH_DIR / "meeting.flac"))
    speech = [e for e in load_events() if e.kind == "speech"][:limit]
    engine = WhisperEngine(resolve_model(model), DecodeSettings())
    engine.warm_up()
    rows = []
    try:
        for label, min_window_s, headroom_s in WINDOWS:
            engine.settings = dataclasses.replace(DecodeSettings(), min_window_s=min_window_s,
                                                  window_headroom_s=headroom_s)
            per_lang: dict[str, dict[str, list[str]]] = {}
            seconds = []
            for event in speech:
                decoded = engine.decode_blocking(audio[int(event.start * 16000) : int(event.end * 16000)], True)
                seconds.append(decoded.seconds)
                bucket = per_lang.setdefault(event.lang, {"refs": [], "hyps": []})
                bucket["refs"].append(event.text)
                bucket["hyps"].append(decoded.text)
            rows.append({
                "window": label, "min_window_s": min_window_s, "headroom_s": headroom_s,
                "wer": {lang: round(100 * wer(b["refs"], b["hyps"]), 1) for lang, b in sorted(per_lang.items())},
                "decode_s_p50": round(statistics.median(seconds), 3),
            })
    finally:
        engine.close()
    return {"model": model, "utterances": len(speech), "beam_size": DecodeSettings().final_beam_size, "windows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--utterances", type=int, default=None, help="only the first N (smoke test)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    conditions = run_conditions()
    write_result({**conditions, **run(args.model, args.utterances)}, args.out)


if __name__ == "__main__":
    main()
