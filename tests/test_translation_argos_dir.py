"""Packages that argostranslate itself installed (also LibreTranslate's) are used, read-only."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from relay.translation.packages import argos_packages_dir, discover_packages, install_package_file
from relay.translation.router import Router
from tests.argos_fixture import build_argos_package

RELAY = str(Path(sys.executable).with_name("relay"))


@pytest.fixture(scope="module")
def en_es_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_argos_package(tmp_path_factory.mktemp("argos"), "en", "es")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary HOME with nothing but what a test puts there; relay's own directory empty."""
    for env in ("XDG_DATA_HOME", "ARGOS_PACKAGES_DIR", "ARGOS_TRANSLATE_PACKAGES_DIR"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RELAY_TRANSLATION_DIR", str(tmp_path / "relay-own"))
    return tmp_path / "home"


def argostranslate_install(package: Path, packages_dir: Path) -> Path:
    """Install as argostranslate.package.install_from_path does: unzip into its packages directory."""
    packages_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(package) as archive:
        archive.extractall(packages_dir)
        return packages_dir / archive.namelist()[0].split("/")[0]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_the_argos_directory_defaults_to_the_users_data_directory(home: Path) -> None:
    assert argos_packages_dir() == home / ".local" / "share" / "argos-translate" / "packages"


def test_argos_packages_dir_overrides_the_default(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGOS_PACKAGES_DIR", str(tmp_path / "elsewhere"))
    assert argos_packages_dir() == tmp_path / "elsewhere"


def test_a_package_argostranslate_installed_is_discovered(home: Path, en_es_package: Path) -> None:
    folder = argostranslate_install(en_es_package, argos_packages_dir())
    (package,) = discover_packages()
    assert (package.direction, package.path) == ("en-es", folder)


def test_it_translates_and_is_left_untouched(home: Path, en_es_package: Path) -> None:
    root = argos_packages_dir()
    argostranslate_install(en_es_package, root)
    before = snapshot(root)
    router = Router.discover()
    try:
        route = router.route("en", "es")
        assert route is not None and route.label == "argos"
        result = router.translate("Please enter your password.", "en", "es")
        assert result.engine == "argos" and result.text.strip()
    finally:
        router.close()
    assert snapshot(root) == before


def test_relays_own_package_wins_a_direction_both_have(home: Path, en_es_package: Path) -> None:
    argostranslate_install(en_es_package, argos_packages_dir())
    own = install_package_file(en_es_package)
    first, second = discover_packages()
    assert first.path == own.path and second.path.is_relative_to(argos_packages_dir())


def test_other_kinds_of_argos_package_are_skipped_quietly(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    sbd = argos_packages_dir() / "sbd-1_0"
    sbd.mkdir(parents=True)
    (sbd / "metadata.json").write_text(json.dumps({"type": "sbd", "package_version": "1.0",
                                                    "from_code": "en", "to_code": "xx"}))
    with caplog.at_level(logging.DEBUG):
        assert discover_packages() == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_relay_models_lists_the_argostranslate_direction(home: Path, en_es_package: Path) -> None:
    argostranslate_install(en_es_package, argos_packages_dir())
    result = subprocess.run([RELAY, "models"], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert [line.split()[:3] for line in result.stdout.splitlines() if "en-es" in line] == [["translation", "en-es", "argos"]]
