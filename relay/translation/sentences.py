"""Rule-based sentence splitting (offline; no model download as Argos's MiniSBD needs)."""

from __future__ import annotations

import re

# Abbreviations (lower case, without the final dot) after which a dot does not end a sentence.
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "sra", "srta", "jr", "st", "mt", "vs",
        "etc", "e.g", "i.e", "cf", "fig", "approx", "dept", "inc", "ltd",
        "mme", "mlle", "mm", "av", "pp", "ud", "uds", "vd", "vds", "núm",
    }
)
# A terminator run, optional closing quotes/brackets, then whitespace.
_BOUNDARY = re.compile(r"([.!?…。！？]+[\"'”’»)\]]*)(\s+|(?<=[。！？])(?=\S))")
_NEXT_STARTS_SENTENCE = re.compile(r"[\"'“‘«(¿¡\[]*[^\W_a-z]|[\"'“‘«(¿¡\[]*\d")


def split_sentences(text: str) -> list[str]:
    """Split `text` into sentences at terminal punctuation, keeping abbreviations intact."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end(1)
        rest = text[match.end():]
        if not rest or not _NEXT_STARTS_SENTENCE.match(rest):
            continue
        if _is_abbreviation(text[start:end]):
            continue
        sentences.append(text[start:end].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return [s for s in sentences if s]


def _is_abbreviation(candidate: str) -> bool:
    """True when `candidate` ends with a known abbreviation or a single initial and one dot."""
    if not candidate.endswith(".") or candidate.endswith(".."):
        return False
    words = candidate[:-1].split()
    if not words:
        return False
    last = words[-1].lstrip("\"'“‘«(¿¡").lower()
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())
