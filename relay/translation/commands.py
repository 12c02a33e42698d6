"""Entry points the CLI wires: translate stdin, list directions, install packages."""

from __future__ import annotations

import itertools
import logging
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from relay.translation import index, packages
from relay.translation.captions import CAPTION_LANGUAGES
from relay.translation.router import Router, normalize_lang

_LOGGER = logging.getLogger(__name__)


class TranslationInstallError(RuntimeError):
    """Installing a translation package failed; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class DirectionInfo:
    """One translatable direction and the route that serves it, for `relay models`."""

    direction: str
    engine: str
    route: str


def run_translate(
    src: str,
    tgt: str,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO = sys.stderr,
    router: Router | None = None,
) -> int:
    """Translate stdin to stdout one line at a time, flushing each line; return an exit code."""
    router = router if router is not None else Router.discover()
    try:
        route = router.route(src, tgt)
        if route is None and normalize_lang(src) != normalize_lang(tgt):
            stderr.write(f"error: no translation route {src}→{tgt} is installed\n")
            return 2
        if route is not None:
            _LOGGER.info("Translating %s with %s", route.path, route.label)
        for line in stdin:
            result = router.translate(line.rstrip("\r\n"), src, tgt)
            stdout.write(result.text + "\n")
            stdout.flush()
    finally:
        router.close()
    return 0


def installed_directions(
    install_dir: Path | None = None,
    languages: tuple[str, ...] = CAPTION_LANGUAGES,
    router: Router | None = None,
) -> list[DirectionInfo]:
    """List every direction between the caption languages and installed ones that has a route."""
    router = router if router is not None else Router.discover(install_dir)
    codes = list(dict.fromkeys([*languages, *router.languages]))
    rows = []
    for source, target in itertools.permutations(codes, 2):
        route = router.route(source, target)
        if route is not None:
            rows.append(DirectionInfo(f"{source}-{target}", route.label, route.path))
    return rows


def install_translation_file(path: str | Path, install_dir: Path | None = None) -> str:
    """Install an .argosmodel file; return a one-line summary or raise TranslationInstallError."""
    try:
        package = packages.install_package_file(Path(path), install_dir)
    except (packages.PackageError, zipfile.BadZipFile, OSError, KeyError) as err:
        raise TranslationInstallError(f"cannot install {path}: {err}") from err
    return _summary(package)


def install_translation_from_index(
    src: str, tgt: str, install_dir: Path | None = None, url: str = index.INDEX_URL
) -> str:
    """Download and install src→tgt from the Argos index; raise TranslationInstallError offline."""
    try:
        package = index.install_from_index(normalize_lang(src), normalize_lang(tgt), install_dir, url)
    except (index.PackageIndexError, packages.PackageError, OSError) as err:
        raise TranslationInstallError(str(err)) from err
    return _summary(package)


def _summary(package: packages.ArgosPackage) -> str:
    """One line describing an installed package."""
    return (
        f"installed Argos package {package.from_code}→{package.to_code} "
        f"(version {package.package_version}) in {package.path}"
    )
