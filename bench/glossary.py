"""Glossary term accuracy: the meeting's terms in machine translation, with and without `--glossary`.

    python -m bench.glossary [--skip-wer] [--out FILE]

42 sentences written for this benchmark (bench/data/glossary_sentences.json, 7 per direction
between English, French and Spanish), each holding a term of bench/data/glossary.csv. Each is
translated by the installed engines (Apertium) as `relay translate` does, once plainly and once
through the glossary (relay.glossary.GlossaryRouter). A sentence counts when its translation
holds the glossary's target term (case-insensitive; `exact` also counts case). The translations
are in the JSON.

And whether the glossary's terms as Whisper hotwords (`--glossary` on serve/start) hurt
recognition where they do not occur: relay's own decoder (WhisperEngine, model base, final beam)
on each speech event of the 3-minute meeting, cut at its reference times, with and without the
glossary's hotwords in the decoding language; word error rate per language against the
references (bench.scoring), and how often a glossary term appears in a transcript of speech that
does not contain it.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.relay_run import run_conditions, write_result
from relay.glossary import Glossary, GlossaryRouter
from relay.translation.router import Router

DATA = Path(__file__).resolve().parent / "data"


def run() -> dict[str, Any]:
    sentences = json.loads((DATA / "glossary_sentences.json").read_text(encoding="utf-8"))["sentences"]
    glossary = Glossary.load(DATA / "glossary.csv")
    router = Router.discover()
    with_glossary = GlossaryRouter(router, glossary)
    rows, counts = [], defaultdict(lambda: defaultdict(int))
    started = time.perf_counter()
    try:
        for source, target, text, term in sentences:
            plain = router.translate(text, source, target).text
            glossed = with_glossary.translate(text, source, target).text
            row = {"direction": f"{source}-{target}", "source": text, "term": term, "plain": plain, "glossary": glossed,
                   "plain_has_term": term.lower() in plain.lower(), "glossary_has_term": term.lower() in glossed.lower(),
                   "glossary_exact": term in glossed}  # fmt: skip
            rows.append(row)
            for key in ("plain_has_term", "glossary_has_term", "glossary_exact"):
                counts[row["direction"]][key] += row[key]
                counts["all"][key] += row[key]
            counts[row["direction"]]["sentences"] += 1
            counts["all"]["sentences"] += 1
    finally:
        with_glossary.close()
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "term_accuracy": {
            direction: {"sentences": c["sentences"],
                        "without_glossary": round(c["plain_has_term"] / c["sentences"], 3),
                        "with_glossary": round(c["glossary_has_term"] / c["sentences"], 3),
                        "with_glossary_exact_case": round(c["glossary_exact"] / c["sentences"], 3)}
            for direction, c in sorted(counts.items())
        },  # fmt: skip
        "translations": rows,
    }


def hotword_wer(model: str = "base") -> dict[str, Any]:
    """WER on the meeting's speech events, relay's decoder with and without the glossary's hotwords."""
    from faster_whisper.audio import decode_audio

    from bench.scoring import load_events, wer
    from bench.transcription import MEETING
    from relay.modelstore import resolve_model
    from relay.whisper_engine import DecodeSettings, WhisperEngine

    glossary = Glossary.load(DATA / "glossary.csv")
    audio = decode_audio(str(MEETING))
    events = [e for e in load_events() if e.kind == "speech"]
    terms = [term.lower() for row in glossary.rows for term in row.values() if term]
    out: dict[str, Any] = {"model": model, "utterances": len(events)}
    for name, hotwords in (("without", ()), ("with_hotwords", glossary.hotwords())):
        engine = WhisperEngine(resolve_model(model), DecodeSettings(workers=1, hotwords=hotwords))
        try:
            texts = [engine.decode_blocking(audio[int(e.start * 16000):int(e.end * 16000)], True).text for e in events]
        finally:
            engine.close()
        by_lang: dict[str, tuple[list[str], list[str]]] = {}
        for event, text in zip(events, texts):
            refs, hyps = by_lang.setdefault(event.lang, ([], []))
            refs.append(event.text)
            hyps.append(text)
        out[name] = {
            "wer_percent": {lang: round(100 * wer(refs, hyps), 1) for lang, (refs, hyps) in sorted(by_lang.items())},
            "glossary_terms_in_transcript": sum(term in text.lower() for text in texts for term in terms),
            "texts": texts,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-wer", action="store_true", help="only the term accuracy (no Whisper)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = {**run_conditions(), **run()}
    if not args.skip_wer:
        result["hotwords"] = hotword_wer()
    write_result(result, args.out)


if __name__ == "__main__":
    main()
