"""Build a tiny random-weight .argosmodel (real CTranslate2 + SentencePiece files, no torch)."""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import sentencepiece
from ctranslate2.specs import transformer_spec

PARALLEL_JSON = Path(__file__).resolve().parents[1].parent / "shared" / "speech" / "parallel.json"
_D_MODEL = 16
_FFN = 32
_HEADS = 2
_LAYERS = 1
_VOCAB = 120


def parallel_rows() -> list[dict[str, str]]:
    """Return the rows {key, en, fr, es} of the shared parallel corpus."""
    rows: list[dict[str, str]] = json.loads(PARALLEL_JSON.read_text(encoding="utf-8"))["rows"]
    return rows


def train_sentencepiece(lines: list[str]) -> bytes:
    """Train a tiny unigram SentencePiece model on `lines` and return its bytes."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=_VOCAB,
        model_type="unigram",
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return model.getvalue()


def _shape(scope: str, vocab: int) -> tuple[int, ...]:
    """Return the weight shape of a variable of the tiny transformer, from its scope name."""
    if re.search(r"(embeddings(_\d+)?|projection)/weight$", scope):
        return (vocab, _D_MODEL)
    if scope.endswith(("gamma", "beta")):
        return (_D_MODEL,)
    if "ffn/linear_0" in scope:
        return (_FFN, _D_MODEL)
    if "ffn/linear_1" in scope:
        return (_D_MODEL, _FFN)
    if "self_attention/linear_0" in scope:
        return (3 * _D_MODEL, _D_MODEL)
    if "attention/linear_1" in scope and "self_attention" not in scope:
        return (2 * _D_MODEL, _D_MODEL)
    return (_D_MODEL, _D_MODEL)


def build_model(model_dir: Path, vocabulary: list[str], seed: int = 0) -> None:
    """Save a random-weight CTranslate2 transformer using `vocabulary` on both sides."""
    rng = np.random.default_rng(seed)
    spec = transformer_spec.TransformerSpec.from_config(_LAYERS, _HEADS)

    def fill(layer: object, scope: str, value: object) -> None:
        if value is None:
            weights = rng.normal(0.0, 0.5, _shape(scope, len(vocabulary))).astype(np.float32)
            setattr(layer, scope.split("/")[-1], weights)

    transformer_spec.model_spec.visit_spec(spec, fill)
    # Never predict <unk>, <s> or </s>: the random model must emit some real pieces.
    bias = np.zeros(len(vocabulary), dtype=np.float32)
    bias[[vocabulary.index(token) for token in ("<unk>", "<s>", "</s>")]] = -1e4
    spec.decoder.projection.bias = bias
    spec.register_source_vocabulary(vocabulary)
    spec.register_target_vocabulary(vocabulary)
    spec.validate()
    spec.optimize()
    model_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(model_dir))


def build_argos_package(destination: Path, from_code: str, to_code: str) -> Path:
    """Write `<destination>/translate-<from>_<to>.argosmodel` and return its path."""
    rows = parallel_rows()
    lines = [row[code] for row in rows for code in (from_code, to_code) if code in row]
    sp_bytes = train_sentencepiece(lines or ["tiny fallback corpus line"] * 20)
    processor = sentencepiece.SentencePieceProcessor(model_proto=sp_bytes)
    vocabulary = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    top = f"translate-{from_code}_{to_code}-1_0"
    staging = destination / f".build-{from_code}-{to_code}"
    build_model(staging / "model", vocabulary)
    metadata = {
        "package_version": "1.0",
        "argos_version": "1.9.0",
        "from_code": from_code,
        "from_name": from_code,
        "to_code": to_code,
        "to_name": to_code,
    }
    package = destination / f"translate-{from_code}_{to_code}.argosmodel"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{top}/metadata.json", json.dumps(metadata))
        archive.writestr(f"{top}/sentencepiece.model", sp_bytes)
        for path in sorted((staging / "model").iterdir()):
            archive.write(path, f"{top}/model/{path.name}")
    shutil.rmtree(staging)
    return package
