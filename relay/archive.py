"""The record after the event: every language's transcript in every format, in one directory.

`relay export --all DIR` writes, for the original and each language of the event, the files
`relay export --format F --lang L` would print (`L.txt`, `L.srt`, `L.vtt`, `L.json`), and a
`README.txt` saying what each one is; `--zip` also packs them into `DIR.zip`. The directory
appears whole or not at all: the files are written to a temporary directory beside it, then
renamed into place; a failure (a full disk) leaves nothing behind.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from .export import FORMATS, ORIGINAL, export
from .store import StoredFinal, TranscriptStore

README = "README.txt"
_FORMAT_TEXT = {
    "txt": "plain text, one caption a line after its time in the livestream [h:mm:ss]",
    "srt": "SubRip subtitles (any video editor or player)",
    "vtt": "WebVTT subtitles (web players, HLS)",
    "json": "every caption with its sequence number, times, language and, for language tracks, source and channel",
}


class ArchiveError(Exception):
    """The archive could not be written (the message is one line, for the operator)."""


def event_languages(finals: Sequence[StoredFinal]) -> list[str]:
    """"original", then the event's languages: its tracks' (an event with tracks), else every
    language a caption was spoken or translated in."""
    tracks = {f.track.lang for f in finals if f.track is not None} - {ORIGINAL}
    if not tracks:
        tracks = {f.caption.lang for f in finals if f.caption.lang} | {
            lang for f in finals for lang, text in f.caption.translations.items() if text.strip()}
    return [ORIGINAL, *sorted(tracks)]


def check_target(target: Path, zipped: bool = False) -> None:
    """Refuse a `target` that exists and is not an empty directory, or an existing `target`.zip
    (nothing is ever overwritten)."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ArchiveError(f"{target} already exists and is not an empty directory; choose another")
    if zipped and _zip_path(target).exists():
        raise ArchiveError(f"{_zip_path(target)} already exists; choose another name")


def _zip_path(directory: Path) -> Path:
    return directory.with_name(directory.name + ".zip")


def write_archive(store: TranscriptStore, target: Path, *, zipped: bool = False) -> list[Path]:
    """Write the archive to `target` (which must not exist, or be an empty directory); return its files."""
    check_target(target, zipped)
    finals = store.all_finals()
    languages = event_languages(finals)
    parent = target.absolute().parent
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=parent))
    except OSError as exc:
        raise ArchiveError(f"cannot write the archive in {parent}: {exc.strerror or exc}") from None
    try:
        for lang in languages:
            for fmt in FORMATS:
                (staging / f"{lang}.{fmt}").write_text(export(finals, fmt, lang), encoding="utf-8")
        (staging / README).write_text(_readme(store, finals, languages), encoding="utf-8")
        staging.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would keep the archive from whoever it is for
        if target.exists():
            target.rmdir()  # the empty directory the operator made for it
        staging.rename(target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArchiveError(f"cannot write the archive to {target}: {exc.strerror or exc}") from None
    if zipped:
        try:
            _zip(target)
        except OSError as exc:
            raise ArchiveError(f"{target} is written, but not its zip: {exc.strerror or exc}") from None
    return sorted(target.iterdir())


def _zip(directory: Path) -> None:
    """`directory`.zip holding its files under the directory's name (written whole, then renamed)."""
    final = _zip_path(directory)
    partial = final.with_name(f".{final.name}.partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(directory.iterdir()):
                archive.write(path, f"{directory.name}/{path.name}")
        os.link(partial, final)  # unlike a rename, never replaces a zip that appeared meanwhile
    finally:
        partial.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _readme(store: TranscriptStore, finals: Sequence[StoredFinal], languages: list[str]) -> str:
    meta = store.meta
    started = datetime.datetime.fromtimestamp(meta.started_at, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    tracks = any(f.track is not None for f in finals)
    lines = [
        "Transcript archive written by relay",
        "",
        f"Event session {meta.session}, started {started}; exported {now}.",
        f"{len(finals)} captions, numbered 1 to {store.last_seq}.",
        "Times are seconds of the livestream from when the relay began reading it.",
        "",
        "Languages (each file holds what a viewer who chose that language read):",
    ]
    for lang in languages:
        lines.append(f"  {lang}.*  {_language_text(lang, tracks)}")
    lines += ["", "Formats (the same captions in each):"]
    lines += [f"  .{fmt:4s} {_FORMAT_TEXT[fmt]}" for fmt in FORMATS]
    lines += ["", "Each file is what `relay export --format FORMAT --lang LANGUAGE` gives.", ""]
    return "\n".join(lines)


def _language_text(lang: str, tracks: bool) -> str:
    if lang == ORIGINAL:
        return "the floor as spoken, each caption in its speaker's language"
    if tracks:
        return (f"{lang}: the floor where it spoke {lang}, the {lang} interpreters' words where they "
                "interpreted (marked \"(interpretation)\"), machine translation elsewhere (marked \"(machine translation)\")")
    return f"{lang}: the floor in {lang}, machine-translated where it spoke another language"
