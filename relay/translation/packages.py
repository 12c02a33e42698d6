"""Argos Translate packages (.argosmodel): validate, install, discover; no argostranslate needed.

Relay installs into its own directory, and also uses (read-only) the packages argostranslate itself
installed, e.g. for LibreTranslate: `$ARGOS_PACKAGES_DIR`, else `~/.local/share/argos-translate/packages`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from relay.translation.types import ARGOS, EngineSpec

_LOGGER = logging.getLogger(__name__)

INSTALL_DIR_ENV = "RELAY_TRANSLATION_DIR"
# As argostranslate.settings reads them (the second is its pre-1.2 name).
ARGOS_DIR_ENVS = ("ARGOS_PACKAGES_DIR", "ARGOS_TRANSLATE_PACKAGES_DIR")
METADATA = "metadata.json"
SENTENCEPIECE = "sentencepiece.model"
MODEL_BIN = "model/model.bin"
_LANG_CODE = re.compile(r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})?$")
_INSTALL_LOCK = threading.Lock()


class PackageError(ValueError):
    """A file is not a usable Argos Translate package."""


class NotTranslation(PackageError):
    """An Argos package of another kind (e.g. sentence boundary detection), not a translation."""


@dataclass(frozen=True, slots=True)
class ArgosPackage:
    """An installed Argos Translate package for one direction."""

    path: Path
    from_code: str
    to_code: str
    package_version: str
    target_prefix: str = ""

    @property
    def direction(self) -> str:
        return f"{self.from_code}-{self.to_code}"

    def spec(self) -> EngineSpec:
        """Describe this package as an engine for the router."""
        return EngineSpec(ARGOS, self.from_code, self.to_code, str(self.path))


def default_install_dir() -> Path:
    """Return $RELAY_TRANSLATION_DIR or <project root>/models/translation."""
    override = os.environ.get(INSTALL_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "models" / "translation"


def argos_packages_dir() -> Path:
    """Where argostranslate installs packages: $ARGOS_PACKAGES_DIR, else its XDG data directory."""
    for env in ARGOS_DIR_ENVS:
        if os.environ.get(env):
            return Path(os.environ[env]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "argos-translate" / "packages"


def package_dirs() -> list[Path]:
    """Relay's own install directory first (it wins a direction both have), then argostranslate's."""
    own, argos = default_install_dir(), argos_packages_dir()
    return [own] if _same_dir(own, argos) else [own, argos]


def parse_metadata(raw: bytes | str) -> dict[str, Any]:
    """Parse and validate a package's metadata.json; raise PackageError when unusable."""
    try:
        metadata = json.loads(raw)
    except ValueError as err:
        raise PackageError(f"{METADATA} is not valid JSON: {err}") from err
    if not isinstance(metadata, dict):
        raise PackageError(f"{METADATA} must hold a JSON object")
    if metadata.get("type", "translate") != "translate":
        raise NotTranslation(f"package type {metadata.get('type')!r} is not a translation package")
    for key in ("from_code", "to_code"):
        code = metadata.get(key)
        if not isinstance(code, str) or not _LANG_CODE.match(code):
            raise PackageError(f"{METADATA}: {key} must be a language code, got {code!r}")
    if metadata["from_code"] == metadata["to_code"]:
        raise PackageError(f"{METADATA}: from_code and to_code are both {metadata['to_code']!r}")
    version = metadata.get("package_version")
    if not isinstance(version, str) or not version.strip():
        raise PackageError(f"{METADATA}: package_version must be a non-empty string")
    return metadata


def install_package_file(path: Path, install_dir: Path | None = None) -> ArgosPackage:
    """Validate an .argosmodel zip and unpack it as <install_dir>/translate-<from>_<to>."""
    root = install_dir or default_install_dir()
    if not path.is_file():
        raise PackageError(f"{path} does not exist")
    if not zipfile.is_zipfile(path):
        raise PackageError(f"{path} is not an Argos package (not a zip archive)")
    with zipfile.ZipFile(path) as archive:
        top = _single_top_folder(archive)
        metadata = parse_metadata(archive.read(f"{top}/{METADATA}"))
        names = set(archive.namelist())
        for required in (SENTENCEPIECE, MODEL_BIN):
            if f"{top}/{required}" not in names:
                raise PackageError(f"{path} lacks {top}/{required}")
        with _INSTALL_LOCK:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=root, prefix=".install-") as staging:
                archive.extractall(staging)
                final = root / f"translate-{metadata['from_code']}_{metadata['to_code']}"
                _replace_dir(Path(staging) / top, final)
    package = load_package(final)
    _LOGGER.info("Installed Argos package %s %s at %s", package.direction, package.package_version, final)
    return package


def load_package(path: Path) -> ArgosPackage:
    """Read an unpacked package folder; raise PackageError when it is incomplete."""
    try:
        metadata = parse_metadata((path / METADATA).read_bytes())
    except OSError as err:
        raise PackageError(f"{path} has no readable {METADATA}: {err}") from err
    for required in (SENTENCEPIECE, MODEL_BIN):
        if not (path / required).is_file():
            raise PackageError(f"{path} lacks {required}")
    return ArgosPackage(
        path=path,
        from_code=metadata["from_code"],
        to_code=metadata["to_code"],
        package_version=metadata["package_version"],
        target_prefix=str(metadata.get("target_prefix", "")),
    )


def discover_packages(install_dir: Path | None = None) -> list[ArgosPackage]:
    """The valid packages in `install_dir`, or else in every package directory, best first."""
    roots = [install_dir] if install_dir else package_dirs()
    return [package for root in roots for package in _packages_in(root)]


def _packages_in(root: Path) -> list[ArgosPackage]:
    """Read (never write) the package folders under `root`, skipping broken ones with a warning."""
    if not root.is_dir():
        return []
    packages = []
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            packages.append(load_package(folder))
        except NotTranslation as err:
            _LOGGER.debug("Not a translation package: %s: %s", folder, err)
        except PackageError as err:
            _LOGGER.warning("Skipping translation package: %s", err)
    return packages


def _same_dir(first: Path, second: Path) -> bool:
    try:
        return first.resolve() == second.resolve()
    except OSError:
        return False


def _single_top_folder(archive: zipfile.ZipFile) -> str:
    """Return the archive's only top-level folder, rejecting unsafe member paths."""
    tops = set()
    for name in archive.namelist():
        member = PurePosixPath(name)
        if member.is_absolute() or ".." in member.parts or "\\" in name:
            raise PackageError(f"unsafe path in package: {name!r}")
        tops.add(member.parts[0])
    if len(tops) != 1:
        raise PackageError(f"a package holds exactly one top-level folder, found {sorted(tops)}")
    top = tops.pop()
    if f"{top}/{METADATA}" not in archive.namelist():
        raise PackageError(f"package lacks {top}/{METADATA}")
    return top


def _replace_dir(source: Path, destination: Path) -> None:
    """Move `source` to `destination`, replacing an older install with minimal downtime."""
    retired = destination.with_name(f".old-{destination.name}")
    shutil.rmtree(retired, ignore_errors=True)
    if destination.exists():
        destination.rename(retired)
    source.rename(destination)
    shutil.rmtree(retired, ignore_errors=True)
