"""Assembling model directories from PyPI packages, and the errors when a part is wrong."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from relay.modelstore import (
    CatalogueEntry, ModelError, ModelPart, ensure_assembled, load_catalogue, resolve_model,
)


def test_base_assembles_to_the_catalogued_size_and_hash():
    entry = load_catalogue()["base"]
    directory = resolve_model("base")
    model_bin = directory / "model.bin"
    assert model_bin.stat().st_size == entry.size == 145_217_532
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (directory / name).is_file()


def test_a_user_directory_is_used_as_it_is(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == tmp_path


def test_a_directory_without_model_files_is_refused(tmp_path):
    with pytest.raises(ModelError, match="not a faster-whisper model directory"):
        resolve_model(str(tmp_path))


def test_an_unknown_name_lists_the_known_models():
    with pytest.raises(ModelError, match="base"):
        resolve_model("large-v9")


def _fake_package(root: Path, module: str, files: dict[str, bytes]) -> None:
    package = root / module
    package.mkdir()
    (package / "__init__.py").write_text("")
    for relative, data in files.items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_bytes(data)


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    _fake_package(site, "fakepart_one", {"data/model.bin.part1": b"abc", "data/config.json": b"{}"})
    _fake_package(site, "fakepart_two", {"data/model.bin.part2": b"def"})
    monkeypatch.syspath_prepend(str(site))
    parts = (
        ModelPart("fake-part-one", "1.0", "fakepart_one", ("data/model.bin.part1", "data/config.json")),
        ModelPart("fake-part-two", "1.0", "fakepart_two", ("data/model.bin.part2",)),
    )
    yield parts
    for name in ("fakepart_one", "fakepart_two"):
        sys.modules.pop(name, None)


def _entry(parts, data: bytes) -> CatalogueEntry:
    return CatalogueEntry("fake", "test", True, len(data), hashlib.sha256(data).hexdigest(), parts)


def test_parts_are_concatenated_in_order(fake_parts, tmp_path):
    directory = ensure_assembled(_entry(fake_parts, b"abcdef"), tmp_path / "cache")
    assert (directory / "model.bin").read_bytes() == b"abcdef"
    assert (directory / "config.json").read_text() == "{}"


def test_a_corrupt_part_names_the_packages_to_reinstall(fake_parts, tmp_path):
    with pytest.raises(ModelError, match="corrupt.*pip install --force-reinstall fake-part-one==1.0"):
        ensure_assembled(_entry(fake_parts, b"abcdeX"), tmp_path / "cache")
    assert not (tmp_path / "cache" / "fake").exists()


def test_a_missing_package_is_named(fake_parts, tmp_path):
    missing = fake_parts + (ModelPart("not-installed-part", "2.0", "no_such_module_xyz", ("x",)),)
    with pytest.raises(ModelError, match="not-installed-part is not installed"):
        ensure_assembled(_entry(missing, b"abcdef"), tmp_path / "cache")


def test_a_missing_file_in_a_package_is_named(fake_parts, tmp_path):
    broken = (fake_parts[0], ModelPart("fake-part-two", "1.0", "fakepart_two", ("data/model.bin.part9",)))
    with pytest.raises(ModelError, match="fake-part-two is missing data/model.bin.part9"):
        ensure_assembled(_entry(broken, b"abcdef"), tmp_path / "cache")
