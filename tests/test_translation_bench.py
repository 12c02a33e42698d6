"""The translation benchmark runs end to end on a few rows of the parallel corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import translation
from relay.translation import apertium
from tests.argos_fixture import parallel_rows


def test_accent_folding_matches_the_spanish_reference_style() -> None:
    assert translation.fold_accents("número Ñandú élève") == "numero Nandu eleve"


@pytest.mark.skipif(not apertium.apertium_installed(), reason="apertium not installed")
def test_bench_scores_six_directions(tmp_path: Path) -> None:
    corpus = tmp_path / "parallel.json"
    corpus.write_text(json.dumps({"rows": parallel_rows()[:8]}), encoding="utf-8")
    result = translation.run(corpus)
    assert set(result["directions"]) == set(translation.DIRECTIONS)
    for figures in result["directions"].values():
        assert figures["chrf"] > 20 and figures["p95_ms"] >= figures["p50_ms"] > 0
