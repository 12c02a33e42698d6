"""Pick the best installed route per direction (Argos > Apertium, pivot when needed) and run it."""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from relay.translation import apertium, packages
from relay.translation.types import (
    APERTIUM,
    ARGOS,
    Engine,
    EngineSpec,
    EngineUnavailable,
    Translation,
    TranslationError,
)

_LOGGER = logging.getLogger(__name__)

PIVOTS = ("es", "en")
MAX_LEGS = 3
_ENGINE_RANK = {ARGOS: 0, APERTIUM: 1}
# Whisper's code for Norwegian is "no"; Argos packages use "nb".
_ALIASES = {"no": "nb"}


def normalize_lang(code: str) -> str:
    """Reduce a language tag to the code engines use ("en-US" → "en", "no" → "nb")."""
    base = code.strip().lower().replace("_", "-").split("-")[0]
    return _ALIASES.get(base, base)


@dataclass(frozen=True, slots=True)
class Route:
    """One or more engine legs from a source to a target language."""

    steps: tuple[EngineSpec, ...]

    @property
    def source(self) -> str:
        return self.steps[0].source

    @property
    def target(self) -> str:
        return self.steps[-1].target

    @property
    def label(self) -> str:
        """Engine label: "argos", "apertium", or legs joined by "+" for a pivot."""
        return "+".join(step.engine for step in self.steps)

    @property
    def path(self) -> str:
        """Languages along the route, e.g. "en→es→fr"."""
        return "→".join([self.source, *(step.target for step in self.steps)])


class Router:
    """Translate between any two languages the installed engines connect."""

    def __init__(self, specs: Iterable[EngineSpec], *, apertium_timeout_s: float = 10.0) -> None:
        # Per direction, every installed engine, best first.
        self._direct: dict[tuple[str, str], list[EngineSpec]] = {}
        for spec in sorted(specs, key=lambda s: _ENGINE_RANK.get(s.engine, len(_ENGINE_RANK))):
            self._direct.setdefault((spec.source, spec.target), []).append(spec)
        self._apertium_timeout_s = apertium_timeout_s
        self._lock = threading.Lock()
        self._engines: dict[EngineSpec, Engine] = {}
        self._engine_locks: dict[EngineSpec, threading.Lock] = {}

    @classmethod
    def discover(cls, install_dir: Path | None = None, apertium_data_dir: Path | None = None) -> Router:
        """Build a router over the installed Argos packages and Apertium modes."""
        specs = [package.spec() for package in packages.discover_packages(install_dir)]
        specs += apertium.discover_modes(apertium_data_dir)
        names = ", ".join(f"{spec.engine} {spec.direction}" for spec in specs)
        _LOGGER.info("Translation engines: %s", names or "none")
        return cls(specs)

    @property
    def languages(self) -> list[str]:
        """Every language some installed engine reads or writes."""
        return sorted({code for pair, specs in self._direct.items() if specs for code in pair})

    def route(self, source: str, target: str) -> Route | None:
        """Return the best route: direct first, then the pivot with the most Argos legs."""
        source, target = normalize_lang(source), normalize_lang(target)
        with self._lock:
            direct = self._best(source, target)
            if direct is not None:
                return Route((direct,))
            candidates = list(self._pivot_routes(source, target))
        if not candidates:
            return None
        return min(candidates, key=self._pivot_rank)

    def translate(self, text: str, source: str, target: str) -> Translation:
        """Translate `text`; pass it through marked untranslated when no route works."""
        if normalize_lang(source) == normalize_lang(target):
            return Translation(text, None)
        for _ in range(2):
            route = self.route(source, target)
            if route is None:
                return Translation(text, None, untranslated=True)
            try:
                return Translation(self._run(route, text), route.label)
            except EngineUnavailable as err:
                _LOGGER.warning("Dropping unusable engine for %s: %s", route.path, err)
            except TranslationError as err:
                _LOGGER.warning("Translation %s failed: %s; passing text through", route.path, err)
                return Translation(text, None, untranslated=True)
        return Translation(text, None, untranslated=True)

    def close(self) -> None:
        """Stop every loaded engine; safe to call twice."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()

    def _run(self, route: Route, text: str) -> str:
        """Run every leg of `route` in turn."""
        for step in route.steps:
            text = self._engine(step).translate(text)
        return text

    def _engine(self, spec: EngineSpec) -> Engine:
        """Load the engine for `spec` once; forget the spec if it cannot load."""
        with self._lock:
            engine = self._engines.get(spec)
            load_lock = self._engine_locks.setdefault(spec, threading.Lock())
        if engine is not None:
            return engine
        with load_lock:
            with self._lock:
                engine = self._engines.get(spec)
            if engine is None:
                try:
                    engine = self._load(spec)
                except EngineUnavailable:
                    with self._lock:
                        specs = self._direct.get((spec.source, spec.target), [])
                        if spec in specs:
                            specs.remove(spec)
                    raise
                with self._lock:
                    self._engines[spec] = engine
        return engine

    def _load(self, spec: EngineSpec) -> Engine:
        """Instantiate the engine class for `spec`."""
        if spec.engine == ARGOS:
            from relay.translation.argos import ArgosTranslator

            return ArgosTranslator(spec)
        if spec.engine == APERTIUM:
            return apertium.ApertiumTranslator(spec, timeout_s=self._apertium_timeout_s)
        raise EngineUnavailable(f"unknown engine {spec.engine!r}")

    def _pivot_routes(self, source: str, target: str) -> Iterable[Route]:
        """Yield the routes through 1..MAX_LEGS-1 pivot languages (caller holds the lock)."""
        for count in range(1, MAX_LEGS):
            for via in itertools.permutations([p for p in PIVOTS if p not in (source, target)], count):
                path = [source, *via, target]
                legs = [self._best(*pair) for pair in zip(path, path[1:])]
                if all(leg is not None for leg in legs):
                    yield Route(tuple(leg for leg in legs if leg is not None))

    def _best(self, source: str, target: str) -> EngineSpec | None:
        """The preferred engine for a direct direction (caller holds the lock)."""
        specs = self._direct.get((source, target))
        return specs[0] if specs else None

    @staticmethod
    def _pivot_rank(route: Route) -> tuple[int, int, tuple[int, ...]]:
        """Fewer legs, then fewer non-Argos legs, then the preferred pivot order."""
        non_argos = sum(step.engine != ARGOS for step in route.steps)
        via = tuple(PIVOTS.index(step.target) for step in route.steps[:-1])
        return (len(route.steps), non_argos, via)
