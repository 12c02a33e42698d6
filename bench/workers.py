"""How to spend the cores on Whisper: threads per decode against decodes side by side.

    python -m bench.workers [--out FILE] [--utterances N]

Decodes the interpreted event's booth utterances (each in its booth's language, beam 5, relay's
WhisperEngine and window) under each (workers, threads per decode) layout: first one at a time
(the latency of one decode when nothing else runs), then every worker busy at once (the
throughput when several channels' finals wait). Reports the median decode time and the
utterances decoded per second of wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.relay_run import run_conditions, write_result
from relay.modelstore import resolve_model
from relay.whisper_engine import Context, DecodeSettings, WhisperEngine

LAYOUTS = ((1, 2), (1, 1), (2, 1), (2, 2))  # (workers, threads per decode)


def _utterances(limit: int) -> list[tuple[Any, Context]]:
    from faster_whisper.audio import decode_audio

    from bench.interpretation_scoring import EVENT_DIR, load_event

    items = []
    for lang, utterances in sorted(load_event()["booths"].items()):
        audio = decode_audio(str(EVENT_DIR / f"booth-{lang}.flac"))
        items += [(audio[int((u["start"] - 0.4) * 16000) : int((u["end"] + 0.2) * 16000)], Context(lang, only=(lang,)))
                  for u in utterances if u["kind"] == "interpretation"][: limit // 3]
    return items


def run(model: str, limit: int) -> dict[str, Any]:
    items = _utterances(limit)
    rows = []
    for workers, threads in LAYOUTS:
        engine = WhisperEngine(resolve_model(model), DecodeSettings(workers=workers, cpu_threads=threads))
        try:
            engine.warm_up()
            one_at_a_time = [engine.decode_blocking(samples, True, context).seconds for samples, context in items]
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=workers) as pool:
                side_by_side = list(pool.map(lambda item: engine.decode_blocking(item[0], True, item[1]).seconds, items))
            wall_s = time.monotonic() - started
        finally:
            engine.close()
        rows.append({
            "workers": workers, "threads_per_decode": threads,
            "one_at_a_time": {"decode_s_p50": round(statistics.median(one_at_a_time), 3),
                              "utterances_per_s": round(len(items) / sum(one_at_a_time), 3)},
            "all_workers_busy": {"decode_s_p50": round(statistics.median(side_by_side), 3),
                                 "utterances_per_s": round(len(items) / wall_s, 3)},
        })
    return {"model": model, "utterances": len(items), "beam_size": DecodeSettings().final_beam_size, "layouts": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--utterances", type=int, default=36, help="booth utterances, a third per booth")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    conditions = run_conditions()
    write_result({**conditions, **run(args.model, args.utterances)}, args.out)


if __name__ == "__main__":
    main()
