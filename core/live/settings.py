"""Live settings shared between the page (writer) and the video thread (reader)."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace
from typing import Any

from core.errors import InvalidInputError

TRIGGERS = ("continuous", "part-present", "manual")
MAX_SMOOTHING = 30


@dataclass(frozen=True)
class LiveConfig:
    """One consistent set of live settings (an immutable snapshot).

    ``threshold`` and ``review_band`` decide pass / review / fail on the smoothed defect score;
    ``smoothing`` is the number of frames of the moving average; ``tta`` averages each crop with its
    mirror image; ``heatmap`` / ``heatmap_opacity`` control the overlay; ``trigger`` says when an
    inspection is recorded; ``keep_pass_share`` is the share of passed parts whose frame is kept.
    """

    threshold: float = 0.5
    review_band: float = 0.1
    smoothing: int = 5
    tta: bool = False
    heatmap: bool = True
    heatmap_opacity: float = 0.45
    trigger: str = "continuous"
    keep_pass_share: float = 0.05

    def validated(self) -> LiveConfig:
        """The same settings, checked; raises InvalidInputError for values the processor cannot use."""
        if not 0.0 <= self.threshold <= 1.0:
            raise InvalidInputError("the threshold is a defect score between 0 and 1")
        if not 0.0 <= self.review_band <= 0.5:
            raise InvalidInputError("the review band is between 0 and 0.5")
        if not 1 <= int(self.smoothing) <= MAX_SMOOTHING:
            raise InvalidInputError(f"smoothing is 1 to {MAX_SMOOTHING} frames")
        if not 0.0 <= self.heatmap_opacity <= 1.0:
            raise InvalidInputError("the heatmap opacity is between 0 and 1")
        if self.trigger not in TRIGGERS:
            raise InvalidInputError(f"trigger must be one of {', '.join(TRIGGERS)}")
        if not 0.0 <= self.keep_pass_share <= 1.0:
            raise InvalidInputError("the share of passed frames to keep is between 0 and 1")
        return replace(self, smoothing=int(self.smoothing))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_tool_settings(cls, settings: dict[str, Any]) -> LiveConfig:
        """Settings saved on a tool: ``threshold``, ``review_band`` and the ``live`` sub-dict."""
        live = dict(settings.get("live") or {})
        known = {name for name in cls.__dataclass_fields__}
        values = {k: v for k, v in live.items() if k in known}
        for name in ("threshold", "review_band"):
            if name in settings:
                values[name] = settings[name]
        return cls(**values).validated()


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

    def update(self, **changes: Any) -> LiveConfig:
        """Change some settings at once; the video thread sees all of them from its next frame."""
        with self._lock:
            self._config = replace(self._config, **changes).validated()
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
