"""Should X→English use Whisper's own translate task? Measured against Apertium.

    python -m bench.whisper_translate

For the French and Spanish clips whose prompt has a human English localisation in
parallel.json, compare chrF (accents folded) of (a) Whisper base `task="translate"` on the
audio and (b) Apertium on relay's own transcript of the same audio, plus the extra time
Whisper needs per caption (one more decode).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio
from sacrebleu.metrics import CHRF

from bench.relay_run import run_conditions, write_result
from bench.scoring import SPEECH_DIR, normalise
from relay.modelstore import resolve_model
from relay.translation import Router
from relay.whisper_engine import DecodeSettings, WhisperEngine


def _fold(text: str) -> str:
    return normalise(text)


def run() -> dict:
    rows = {r["key"]: r for r in json.loads((SPEECH_DIR / "parallel.json").read_text())["rows"]}
    clips = json.loads((SPEECH_DIR / "clips.json").read_text())["clips"]
    chosen = [(c, rows[c["id"][7:]]) for c in clips if c["lang"] in ("fr", "es") and c["id"][7:] in rows]
    engine = WhisperEngine(resolve_model("base"), DecodeSettings())
    whisper = WhisperModel(str(resolve_model("base")), device="cpu", compute_type="int8")
    router = Router.discover()
    refs, via_whisper, via_apertium, extra_s = [], [], [], []
    try:
        for clip, row in chosen:
            audio = decode_audio(str(SPEECH_DIR / clip["path"]))
            transcript = engine.decode_blocking(audio, True)
            started = time.monotonic()
            segments, _ = whisper.transcribe(audio, task="translate", language=transcript.lang, beam_size=5)
            via_whisper.append(" ".join(s.text for s in segments))
            extra_s.append(time.monotonic() - started)
            via_apertium.append(router.translate(transcript.text, transcript.lang, "en").text)
            refs.append(row["en"])
    finally:
        router.close()
        engine.close()
    chrf = CHRF()
    folded_refs = [[_fold(r) for r in refs]]
    return {
        "clips": len(chosen),
        "chrf_whisper_translate": round(chrf.corpus_score([_fold(h) for h in via_whisper], folded_refs).score, 1),
        "chrf_apertium_on_transcript": round(chrf.corpus_score([_fold(h) for h in via_apertium], folded_refs).score, 1),
        "whisper_translate_s_per_caption_p50": round(statistics.median(extra_s), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    conditions = run_conditions()
    write_result({**conditions, **run()}, args.out)


if __name__ == "__main__":
    main()
