"""The meeting's own terms: a glossary machine translation must follow word for word.

`--glossary FILE` is a CSV with a header naming its languages (`en,fr,es`) and one term per
row, e.g. "Women, Peace and Security", "Femmes, paix et sécurité", "Mujeres, paz y seguridad".
Before a caption goes to the engine, each glossary term of its language is swapped for a
placeholder the engine passes through untouched (an unknown word to Apertium, `GLOSSTERM7`);
afterwards the placeholder becomes the target language's term, exactly as the glossary has it.

Matching: whole words only (a term inside a longer word is left alone), any case, any run of
spaces between the term's words, longest term first. Case follows the speaker's where it
says something: a term matched in capitals is written in capitals, a lower-case glossary term
matched with a capital (a sentence's start) gets one. A plural ("s"/"es" after the term) is
kept on a one-word target ("treaty" → "traité", "treaties"... are not matched: only regular
plurals are); a several-word target is written as the glossary has it.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from relay.translation.router import normalize_lang
from relay.translation.types import Translation

_PLACEHOLDER = "GLOSSTERM{}"
_PLACEHOLDER_RE = re.compile(r"[*#@]?glossterm(\d+)", re.IGNORECASE)
_PLURAL_ENDINGS = ("s", "es")


class GlossaryError(ValueError):
    """A glossary the relay cannot use (one line, for the operator)."""


@dataclass(frozen=True, slots=True)
class _Term:
    pattern: re.Pattern[str]
    source: str
    target: str


class Glossary:
    """The terms of the meeting, per language; `protect` and `restore` wrap one translation."""

    def __init__(self, rows: list[dict[str, str]]) -> None:
        self.rows = rows
        self._terms: dict[tuple[str, str], list[_Term]] = {}  # compiled once per direction

    @classmethod
    def load(cls, path: Path) -> Glossary:
        """Read the CSV (header: language codes, e.g. `en,fr,es`); at least two languages, one term."""
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                table = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise GlossaryError(f"cannot read the glossary {path}: {getattr(exc, 'strerror', None) or exc}") from None
        if not table:
            raise GlossaryError(f"the glossary {path} is empty")
        languages = [cell.strip().lower() for cell in table[0]]
        if len(set(languages)) < 2 or not all(re.fullmatch(r"[a-z]{2,3}", lang) for lang in languages):
            raise GlossaryError(f"the glossary {path} needs a header of language codes, e.g. en,fr,es")
        rows = [{lang: " ".join(cell.split()) for lang, cell in zip(languages, row)} for row in table[1:]]
        rows = [row for row in rows if sum(1 for term in row.values() if term) >= 2]
        if not rows:
            raise GlossaryError(f"the glossary {path} has no term in two languages")
        return cls(rows)

    def hotwords(self) -> tuple[tuple[str, str], ...]:
        """Per language, its terms as one line for Whisper's `hotwords` (terms joined by ", ")."""
        languages = sorted({lang for row in self.rows for lang in row})
        lines = ((lang, ", ".join(dict.fromkeys(row[lang] for row in self.rows if row.get(lang)))) for lang in languages)
        return tuple((lang, line) for lang, line in lines if line)

    def terms(self, source: str, target: str) -> list[_Term]:
        """The (source term, target term) pairs of a direction, longest source term first; of two
        rows with the same source term (any case), the first in the file."""
        if (source, target) not in self._terms:
            pairs: dict[str, tuple[str, str]] = {}
            for row in self.rows:
                if row.get(source) and row.get(target):
                    pairs.setdefault(row[source].lower(), (row[source], row[target]))
            ordered = sorted(pairs.values(), key=lambda pair: len(pair[0]), reverse=True)  # stable: file order
            self._terms[source, target] = [_Term(_term_pattern(src), src, tgt) for src, tgt in ordered]
        return self._terms[source, target]

    def protect(self, text: str, source: str, target: str) -> tuple[str, list[str]]:
        """`text` with its glossary terms as placeholders, and the target term each stands for."""
        targets: list[str] = []
        if _PLACEHOLDER_RE.search(text):
            return text, targets  # the speaker said our placeholder's word: leave the text alone
        for term in self.terms(source, target):
            def swap(match: re.Match[str], term: _Term = term) -> str:
                targets.append(_target_form(match, term))
                return _PLACEHOLDER.format(len(targets) - 1)

            text = term.pattern.sub(swap, text)
        return text, targets

    @staticmethod
    def restore(text: str, targets: list[str]) -> str:
        """Put each placeholder's target term back (one the engine lost is simply absent)."""
        def back(match: re.Match[str]) -> str:
            index = int(match.group(1))
            return targets[index] if index < len(targets) else match.group(0)

        return _PLACEHOLDER_RE.sub(back, text)


def _is_acronym(term: str) -> bool:
    letters = [ch for ch in term if ch.isalpha()]
    return len(letters) > 1 and all(ch.isupper() for ch in letters)


def _term_pattern(term: str) -> re.Pattern[str]:
    """Whole words, any spacing; any case and a regular plural, except for an acronym ("WHO",
    "US"): those match only in capitals, as written, or "who" and "us" would be terms."""
    words = r"\s+".join(re.escape(word) for word in term.split())
    if _is_acronym(term):
        return re.compile(rf"(?<!\w){words}(?P<plural>)(?!\w)")
    plural = "|".join(_PLURAL_ENDINGS)
    return re.compile(rf"(?<!\w){words}(?P<plural>{plural})?(?!\w)", re.IGNORECASE)


def _target_form(match: re.Match[str], term: _Term) -> str:
    """The target term in the case (and number, for one word) the speaker used."""
    said, target = match.group(0), term.target
    if _is_acronym(term.source):
        return target  # exactly as the glossary has it ("UNICEF" -> "Unicef" if so written)
    if match.group("plural") and not term.source.lower().endswith(match.group("plural").lower()) \
            and " " not in target and not target.endswith(("s", "x", "z")):
        target += "s"
    letters = [ch for ch in said if ch.isalpha()]
    if len(letters) > 1 and all(ch.isupper() for ch in letters):
        return target.upper()
    if said[:1].isupper() and term.source[:1].islower():
        return target[:1].upper() + target[1:]
    return target


class GlossaryRouter:
    """A translation router whose every translation follows the glossary (same interface as `Router`)."""

    def __init__(self, router, glossary: Glossary) -> None:
        self._router = router
        self.glossary = glossary

    def route(self, source: str, target: str):
        return self._router.route(source, target)

    def translate(self, text: str, source: str, target: str) -> Translation:
        protected, targets = self.glossary.protect(text, normalize_lang(source), normalize_lang(target))
        if not targets:
            return self._router.translate(text, source, target)
        result = self._router.translate(protected, source, target)
        if result.untranslated:
            return self._router.translate(text, source, target)  # passed through: the speaker's own words
        return Translation(self.glossary.restore(result.text, targets), result.engine, result.untranslated)

    def close(self) -> None:
        self._router.close()
