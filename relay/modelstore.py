"""Find, assemble and verify Whisper model directories from the model catalogue."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CATALOGUE_PATH = PROJECT_ROOT / "models" / "catalogue.json"
_VERIFIED_MARKER = ".verified-sha256"
_COPY_BLOCK_BYTES = 4 * 1024 * 1024


class ModelError(Exception):
    """A model cannot be found, assembled or verified; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ModelPart:
    """Files carried by one PyPI package."""

    package: str
    version: str
    module: str
    files: tuple[str, ...]

    @property
    def reinstall_hint(self) -> str:
        return f"reinstall it: .venv/bin/pip install --force-reinstall {self.package}=={self.version}"


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """A named model: where its parts come from and what the result must hash to."""

    name: str
    description: str
    multilingual: bool
    size: int
    sha256: str
    parts: tuple[ModelPart, ...]


def models_dir() -> Path:
    """Where assembled models are cached."""
    return Path(os.environ.get("RELAY_MODELS_DIR", PROJECT_ROOT / "models"))


def load_catalogue(path: Path = CATALOGUE_PATH) -> dict[str, CatalogueEntry]:
    """Read the catalogue file into entries keyed by model name."""
    raw = json.loads(path.read_text(encoding="utf-8"))["models"]
    return {
        name: CatalogueEntry(
            name=name,
            description=spec["description"],
            multilingual=spec["multilingual"],
            size=spec["model_bin"]["size"],
            sha256=spec["model_bin"]["sha256"],
            parts=tuple(
                ModelPart(p["package"], p["version"], p["module"], tuple(p["files"]))
                for p in spec["parts"]
            ),
        )
        for name, spec in raw.items()
    }


def resolve_model(name_or_dir: str) -> Path:
    """Return a directory faster-whisper can load for a catalogue name or a user directory."""
    candidate = Path(name_or_dir).expanduser()
    if candidate.is_dir():
        return _check_user_dir(candidate)
    catalogue = load_catalogue()
    if name_or_dir not in catalogue:
        known = ", ".join(sorted(catalogue))
        raise ModelError(
            f"unknown model {name_or_dir!r}: use one of {known} or a faster-whisper model directory"
        )
    return ensure_assembled(catalogue[name_or_dir])


def _check_user_dir(directory: Path) -> Path:
    missing = [f for f in ("model.bin", "config.json") if not (directory / f).is_file()]
    if missing:
        raise ModelError(
            f"{directory} is not a faster-whisper model directory (missing {', '.join(missing)})"
        )
    return directory


def ensure_assembled(entry: CatalogueEntry, cache_root: Path | None = None) -> Path:
    """Assemble the entry's directory from its packages once, verify it, and return it."""
    target = (cache_root or models_dir()) / entry.name
    if _is_verified(target, entry):
        return target
    sources = {part: _package_dir(part) for part in entry.parts}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=target.parent))
    try:
        _assemble(entry, sources, staging)
        digest = _sha256(staging / "model.bin")
        if digest != entry.sha256:
            hints = "; ".join(p.reinstall_hint for p in entry.parts)
            raise ModelError(
                f"model {entry.name!r} assembled from its packages is corrupt "
                f"(sha256 {digest[:12]}..., expected {entry.sha256[:12]}...): {hints}"
            )
        (staging / _VERIFIED_MARKER).write_text(entry.sha256, encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _LOGGER.info("Assembled model %s in %s", entry.name, target)
    return target


def _is_verified(target: Path, entry: CatalogueEntry) -> bool:
    marker = target / _VERIFIED_MARKER
    model_bin = target / "model.bin"
    return (
        marker.is_file()
        and marker.read_text(encoding="utf-8").strip() == entry.sha256
        and model_bin.is_file()
        and model_bin.stat().st_size == entry.size
    )


def _package_dir(part: ModelPart) -> Path:
    spec = importlib.util.find_spec(part.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"Python package {part.package} is not installed: {part.reinstall_hint}")
    root = Path(next(iter(spec.submodule_search_locations)))
    for relative in part.files:
        if not (root / relative).is_file():
            raise ModelError(
                f"Python package {part.package} is missing {relative}: {part.reinstall_hint}"
            )
    return root


def _assemble(entry: CatalogueEntry, sources: dict[ModelPart, Path], staging: Path) -> None:
    bin_parts: list[Path] = []
    for part in entry.parts:
        for relative in part.files:
            source = sources[part] / relative
            if source.name == "model.bin" or source.name.startswith("model.bin."):
                bin_parts.append(source)
            else:
                shutil.copyfile(source, staging / source.name)
    bin_parts.sort(key=lambda p: p.name)
    with open(staging / "model.bin", "wb") as out:
        for piece in bin_parts:
            with open(piece, "rb") as chunk:
                shutil.copyfileobj(chunk, out, _COPY_BLOCK_BYTES)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_COPY_BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()
