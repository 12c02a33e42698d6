"""Argos packages end to end with a tiny random-weight .argosmodel: install, discover, load, route."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.translation import apertium, packages
from relay.translation.argos import ArgosTranslator
from relay.translation.packages import PackageError, discover_packages, install_package_file
from relay.translation.router import Router
from relay.translation.types import EngineSpec, EngineUnavailable
from tests.argos_fixture import build_argos_package

needs_apertium = pytest.mark.skipif(not apertium.apertium_installed(), reason="apertium not installed")


@pytest.fixture(scope="module")
def en_es_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_argos_package(tmp_path_factory.mktemp("argos"), "en", "es")


@pytest.fixture
def install_dir(tmp_path: Path, en_es_package: Path) -> Path:
    target = tmp_path / "translation"
    install_package_file(en_es_package, target)
    return target


@pytest.fixture
def router(install_dir: Path) -> Iterator[Router]:
    router = Router.discover(install_dir)
    yield router
    router.close()


def rewrite_package(source: Path, destination: Path, edit: dict[str, bytes | None]) -> Path:
    """Copy a package zip, replacing (bytes) or dropping (None) members named by their suffix."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(destination, "w") as new:
        for name in old.namelist():
            suffix = name.split("/", 1)[1]
            if suffix in edit:
                replacement = edit[suffix]
                if replacement is not None:
                    new.writestr(name, replacement)
                continue
            new.writestr(name, old.read(name))
    return destination


def test_installed_package_is_discovered_as_its_direction(install_dir: Path) -> None:
    (package,) = discover_packages(install_dir)
    assert (package.direction, package.package_version) == ("en-es", "1.0")


def test_installed_package_translates_to_text(install_dir: Path) -> None:
    (package,) = discover_packages(install_dir)
    translator = ArgosTranslator(package.spec())
    try:
        out = translator.translate("Please enter the conference pin number. Thank you.")
    finally:
        translator.close()
    assert out.strip()


@needs_apertium
def test_router_prefers_argos_over_apertium(router: Router) -> None:
    route = router.route("en", "es")
    assert route is not None and route.label == "argos"


@needs_apertium
def test_router_translates_with_argos(router: Router) -> None:
    result = router.translate("Please enter the conference pin number.", "en", "es")
    assert result.engine == "argos" and result.text and not result.untranslated


@needs_apertium
def test_pivot_runs_through_the_argos_leg(router: Router) -> None:
    result = router.translate("Please enter the conference pin number.", "en", "fr")
    assert result.engine == "argos+apertium" and result.text and not result.untranslated


@needs_apertium
def test_other_source_language_reaches_all_caption_languages(tmp_path: Path, install_dir: Path) -> None:
    install_package_file(build_argos_package(tmp_path, "ja", "en"), install_dir)
    router = Router.discover(install_dir)
    try:
        labels = {target: router.translate("会議を始めます。", "ja", target).engine for target in ("en", "es", "fr")}
    finally:
        router.close()
    assert labels == {"en": "argos", "es": "argos+argos", "fr": "argos+argos+apertium"}


@needs_apertium
def test_unloadable_package_falls_back_to_apertium(tmp_path: Path, en_es_package: Path) -> None:
    broken = rewrite_package(en_es_package, tmp_path / "broken.argosmodel", {"model/model.bin": b"garbage"})
    install_package_file(broken, tmp_path / "dir")
    router = Router.discover(tmp_path / "dir")
    try:
        result = router.translate("Good morning, my friends.", "en", "es")
    finally:
        router.close()
    assert (result.engine, result.text) == ("apertium", "Buenos días, mis amigos.")


def test_unloadable_package_raises_engine_unavailable(tmp_path: Path, en_es_package: Path) -> None:
    broken = rewrite_package(en_es_package, tmp_path / "broken.argosmodel", {"model/model.bin": b"garbage"})
    package = install_package_file(broken, tmp_path / "dir")
    with pytest.raises(EngineUnavailable):
        ArgosTranslator(package.spec())


def test_reinstall_replaces_the_older_version(tmp_path: Path, install_dir: Path, en_es_package: Path) -> None:
    metadata = {"package_version": "1.1", "from_code": "en", "to_code": "es"}
    edit: dict[str, bytes | None] = {"metadata.json": json.dumps(metadata).encode()}
    newer = rewrite_package(en_es_package, tmp_path / "new.argosmodel", edit)
    install_package_file(newer, install_dir)
    assert [p.package_version for p in discover_packages(install_dir)] == ["1.1"]


def test_rejects_a_file_that_is_not_a_zip(tmp_path: Path) -> None:
    bogus = tmp_path / "x.argosmodel"
    bogus.write_text("not a zip")
    with pytest.raises(PackageError, match="not a zip"):
        install_package_file(bogus, tmp_path / "dir")


def test_rejects_metadata_without_codes(tmp_path: Path, en_es_package: Path) -> None:
    edit: dict[str, bytes | None] = {"metadata.json": b'{"package_version": "1"}'}
    bad = rewrite_package(en_es_package, tmp_path / "bad.argosmodel", edit)
    with pytest.raises(PackageError, match="from_code"):
        install_package_file(bad, tmp_path / "dir")


def test_rejects_a_package_without_model(tmp_path: Path, en_es_package: Path) -> None:
    bad = rewrite_package(en_es_package, tmp_path / "bad.argosmodel", {"model/model.bin": None})
    with pytest.raises(PackageError, match="model.bin"):
        install_package_file(bad, tmp_path / "dir")


def test_rejects_paths_escaping_the_install_dir(tmp_path: Path) -> None:
    evil = tmp_path / "evil.argosmodel"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("pkg/metadata.json", '{"from_code": "en", "to_code": "es", "package_version": "1"}')
        archive.writestr("pkg/../../escaped.txt", "x")
    with pytest.raises(PackageError, match="unsafe path"):
        install_package_file(evil, tmp_path / "dir")
    assert not (tmp_path / "escaped.txt").exists()


def test_discovery_skips_broken_folders(install_dir: Path) -> None:
    (install_dir / "half-copied").mkdir()
    assert [p.direction for p in discover_packages(install_dir)] == ["en-es"]


def test_install_dir_defaults_to_project_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(packages.INSTALL_DIR_ENV, raising=False)
    assert packages.default_install_dir() == Path(__file__).resolve().parents[1] / "models" / "translation"


def test_install_dir_env_var_overrides_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(packages.INSTALL_DIR_ENV, str(tmp_path))
    assert packages.default_install_dir() == tmp_path


def test_missing_package_folder_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable):
        ArgosTranslator(EngineSpec("argos", "en", "es", str(tmp_path / "nowhere")))
