"""Machine translation of captions: Argos packages and Apertium behind one router."""

from relay.translation.captions import CAPTION_LANGUAGES, CaptionTranslations, CaptionTranslator
from relay.translation.router import Route, Router, normalize_lang
from relay.translation.types import (
    APERTIUM,
    ARGOS,
    UNTRANSLATED,
    EngineSpec,
    EngineUnavailable,
    Translation,
    TranslationError,
    TranslationTimeout,
)

__all__ = [
    "APERTIUM",
    "ARGOS",
    "CAPTION_LANGUAGES",
    "UNTRANSLATED",
    "CaptionTranslations",
    "CaptionTranslator",
    "EngineSpec",
    "EngineUnavailable",
    "Route",
    "Router",
    "Translation",
    "TranslationError",
    "TranslationTimeout",
    "normalize_lang",
]
