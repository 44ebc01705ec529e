"""Live settings shared between the page (writer) and the video thread (reader)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from core.errors import InvalidInputError
from core.tool_settings import LiveOptions


@dataclass(frozen=True)
class LiveConfig:
    """One consistent set of live settings (an immutable snapshot).

    ``thresholds`` / ``review_bands`` (per model method) decide pass / review / fail on the smoothed
    score of the tool whose settings are on screen; ``options`` are the tool's live options
    (``core.tool_settings.LiveOptions``: smoothing, test-time augmentation, heatmap, trigger).
    """

    thresholds: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    review_bands: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    options: LiveOptions = field(default_factory=LiveOptions)

    def validated(self) -> LiveConfig:
        """The same settings, checked; raises InvalidInputError for values the processor cannot use."""
        for method, value in self.thresholds.items():
            if not 0.0 <= float(value) <= 1.0:
                raise InvalidInputError(f"the {method} threshold is a score between 0 and 1")
        for method, value in self.review_bands.items():
            if not 0.0 <= float(value) <= 0.5:
                raise InvalidInputError(f"the {method} review band is between 0 and 0.5")
        return replace(self, thresholds=MappingProxyType(dict(self.thresholds)),
                       review_bands=MappingProxyType(dict(self.review_bands)), options=self.options.validated())

    def __getattr__(self, name: str) -> Any:  # config.smoothing, config.tta, ... read the live options
        if name in {f.name for f in fields(LiveOptions)}:
            return getattr(self.options, name)
        raise AttributeError(name)


class LiveSettings:
    """Thread-safe holder of the current :class:`LiveConfig` plus the manual-inspect request.

    The page calls :meth:`update` / :meth:`request_inspection`; the video thread reads
    :meth:`snapshot` once per frame and :meth:`take_inspection_request` (one-shot).
    """

    def __init__(self, config: LiveConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = (config or LiveConfig()).validated()
        self._inspect_requested = False

    def snapshot(self) -> LiveConfig:
        with self._lock:
            return self._config

    def update(self, thresholds: dict[str, float] | None = None, review_bands: dict[str, float] | None = None,
               **options: Any) -> LiveConfig:
        """Change some settings at once; the video thread sees all of them from its next frame."""
        with self._lock:
            config = self._config
            self._config = replace(
                config, thresholds=MappingProxyType({**config.thresholds, **(thresholds or {})}),
                review_bands=MappingProxyType({**config.review_bands, **(review_bands or {})}),
                options=replace(config.options, **options)).validated()
            return self._config

    def request_inspection(self) -> None:
        """Ask for one recorded inspection of the next processed frame (the Inspect button)."""
        with self._lock:
            self._inspect_requested = True

    def take_inspection_request(self) -> bool:
        """True once after :meth:`request_inspection` (then False until the next request)."""
        with self._lock:
            requested, self._inspect_requested = self._inspect_requested, False
            return requested
