"""Translate a final caption into every caption language (en, fr, es)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping

from relay.translation.router import Router, normalize_lang
from relay.translation.types import UNTRANSLATED, Translation

_LOGGER = logging.getLogger(__name__)

CAPTION_LANGUAGES = ("en", "fr", "es")


@dataclass(frozen=True, slots=True)
class CaptionTranslations:
    """A caption's text per language, and per machine-translated language its engine label.

    `mt` has no entry for the source language; a target with no working route holds the
    source text and the label "untranslated".
    """

    translations: Mapping[str, str]
    mt: Mapping[str, str]


class CaptionTranslator:
    """Translate captions with one router; owns the worker threads its async calls use."""

    def __init__(
        self,
        router: Router | None = None,
        languages: tuple[str, ...] = CAPTION_LANGUAGES,
        max_workers: int = len(CAPTION_LANGUAGES),
    ) -> None:
        self.router = router if router is not None else Router.discover()
        self.languages = languages
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="translate")

    def translate(self, text: str, lang: str) -> CaptionTranslations:
        """Translate `text` (spoken in `lang`) into every caption language, one after another."""
        source = normalize_lang(lang)
        results = {target: self.router.translate(text, source, target) for target in self._targets(source)}
        return _assemble(text, source, self.languages, results)

    async def translate_async(self, text: str, lang: str) -> CaptionTranslations:
        """Translate into every caption language concurrently on the owned worker threads."""
        source = normalize_lang(lang)
        loop = asyncio.get_running_loop()
        targets = self._targets(source)
        jobs = [
            loop.run_in_executor(self._executor, self.router.translate, text, source, target)
            for target in targets
        ]
        results = dict(zip(targets, await asyncio.gather(*jobs)))
        return _assemble(text, source, self.languages, results)

    def warm_up(self) -> None:
        """Start every engine between the caption languages now, not on the first caption."""
        for source in self.languages:
            for target in self._targets(source):
                self.router.translate("1.", source, target)

    def close(self) -> None:
        """Stop the worker threads and the engines; safe to call twice."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.router.close()

    def _targets(self, source: str) -> list[str]:
        """Caption languages other than the source."""
        return [target for target in self.languages if target != source]


def _assemble(
    text: str, source: str, languages: tuple[str, ...], results: Mapping[str, Translation]
) -> CaptionTranslations:
    """Put the source text and each translation in caption-language order."""
    translations: dict[str, str] = {}
    mt: dict[str, str] = {}
    for lang in languages:
        if lang == source:
            translations[lang] = text
            continue
        result = results[lang]
        translations[lang] = result.text
        mt[lang] = UNTRANSLATED if result.untranslated else (result.engine or UNTRANSLATED)
        if result.untranslated:
            _LOGGER.debug("No %s→%s translation; caption passed through", source, lang)
    return CaptionTranslations(translations=translations, mt=mt)
