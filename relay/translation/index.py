"""Install Argos packages from the public Argos package index (needs network)."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from relay.translation.packages import ArgosPackage, install_package_file

_LOGGER = logging.getLogger(__name__)

INDEX_URL = "https://raw.githubusercontent.com/argosopentech/argospm-index/main/index.json"
TIMEOUT_S = 10.0


class PackageIndexError(RuntimeError):
    """The package index could not be read or has no package for a direction."""


def fetch_index(url: str = INDEX_URL, timeout_s: float = TIMEOUT_S) -> list[dict[str, Any]]:
    """Download and parse the package index; raise PackageIndexError with a one-line reason."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            entries = json.loads(response.read())
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        raise PackageIndexError(f"cannot reach the Argos package index {url} (offline?): {reason}") from err
    except ValueError as err:
        raise PackageIndexError(f"the Argos package index {url} is not valid JSON: {err}") from err
    if not isinstance(entries, list):
        raise PackageIndexError(f"the Argos package index {url} is not a list of packages")
    return [entry for entry in entries if isinstance(entry, dict)]


def find_entry(entries: list[dict[str, Any]], source: str, target: str) -> dict[str, Any]:
    """Return the newest index entry for source→target; raise PackageIndexError when none."""
    matches = [e for e in entries if e.get("from_code") == source and e.get("to_code") == target]
    if not matches:
        raise PackageIndexError(f"the Argos package index has no {source}→{target} package")
    return max(matches, key=lambda entry: _version_key(str(entry.get("package_version", "0"))))


def install_from_index(
    source: str,
    target: str,
    install_dir: Path | None = None,
    url: str = INDEX_URL,
    timeout_s: float = TIMEOUT_S,
) -> ArgosPackage:
    """Download the source→target package named by the index and install it."""
    entry = find_entry(fetch_index(url, timeout_s), source, target)
    links = [link for link in entry.get("links", []) if isinstance(link, str)]
    if not links:
        raise PackageIndexError(f"the index entry for {source}→{target} has no download link")
    with tempfile.TemporaryDirectory(prefix="relay-argos-") as scratch:
        archive = Path(scratch) / f"{source}_{target}.argosmodel"
        _download(links[0], archive, timeout_s)
        return install_package_file(archive, install_dir)


def _download(url: str, destination: Path, timeout_s: float) -> None:
    """Stream `url` to `destination`; raise PackageIndexError with a one-line reason."""
    _LOGGER.info("Downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, destination.open("wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise PackageIndexError(f"cannot download {url}: {getattr(err, 'reason', err)}") from err


def _version_key(version: str) -> tuple[int, ...]:
    """Compare dotted versions numerically ("1.10" > "1.9"); non-numeric parts count as 0."""
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))
