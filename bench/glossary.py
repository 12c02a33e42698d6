"""Glossary term accuracy: the meeting's terms in machine translation, with and without `--glossary`.

    python -m bench.glossary [--out FILE]

42 sentences written for this benchmark (bench/data/glossary_sentences.json, 7 per direction
between English, French and Spanish), each holding a term of bench/data/glossary.csv. Each is
translated by the installed engines (Apertium) as `relay translate` does, once plainly and once
through the glossary (relay.glossary.GlossaryRouter). A sentence counts when its translation
holds the glossary's target term (case-insensitive; `exact` also counts case). The translations
are in the JSON.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    write_result({**run_conditions(), **run()}, args.out)


if __name__ == "__main__":
    main()
