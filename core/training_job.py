"""A training running in a background thread that a page can poll and cancel."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from core.audit import Actor
from core.errors import StudioError, TrainingCancelledError
from core.studio import Studio
from core.training import TrainResult, train
from models.registry import DEFAULT_METHOD

STAGE_LABELS = {"loading": "Reading images", "features": "Computing features", "validation": "Cross-validating",
                "fit": "Fitting", "saving": "Saving", "done": "Done"}
# share of the whole job each stage starts at, for one overall progress fraction
STAGE_STARTS = {"loading": 0.0, "features": 0.05, "validation": 0.7, "fit": 0.9, "saving": 0.95, "done": 1.0}


def overall_fraction(stage: str, fraction: float) -> float:
    """Progress of the whole job in [0, 1] from a stage and the fraction of it done."""
    names = list(STAGE_STARTS)
    start = STAGE_STARTS.get(stage, 0.0)
    following = names.index(stage) + 1 if stage in STAGE_STARTS else len(names)
    end = STAGE_STARTS[names[following]] if following < len(names) else 1.0
    return min(1.0, start + (end - start) * max(0.0, min(1.0, fraction)))


@dataclass
class TrainingJob:
    """One training of ``tool_name`` in a daemon thread: ``stage`` / ``fraction`` advance, then
    ``result`` or ``error`` is set and ``finished`` becomes true. ``cancel()`` stops it at the next
    step, leaving the active model untouched."""

    studio: Studio
    tool_name: str
    profile: str
    seed: int = 0
    method: str = DEFAULT_METHOD
    activate: bool = True
    actor: Actor = field(kw_only=True)
    stage: str = "loading"
    fraction: float = 0.0
    result: TrainResult | None = None
    error: str | None = None
    cancelled: bool = False
    started_at: float = field(default_factory=time.monotonic)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TrainingJob:
        self._thread = threading.Thread(target=self._run, name=f"train-{self.tool_name}", daemon=True)
        self._thread.start()
        return self

    def _progress(self, stage: str, fraction: float) -> None:
        self.stage, self.fraction = stage, fraction

    def _run(self) -> None:
        try:
            self.result = train(self.studio, self.tool_name, self.method, profile=self.profile, seed=self.seed,
                                progress=self._progress, cancel=self._cancel, activate=self.activate,
                                actor=self.actor)
        except TrainingCancelledError as error:
            self.cancelled, self.error = True, str(error)
        except StudioError as error:
            self.error = str(error)
        except Exception as error:  # a crash leaves the active model untouched; say what happened
            self.error = f"training failed: {type(error).__name__}: {error}"

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def finished(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    @property
    def progress(self) -> float:
        return overall_fraction(self.stage, self.fraction)

    @property
    def status_text(self) -> str:
        if self._cancel.is_set() and not self.finished:
            return "Cancelling..."
        seconds = time.monotonic() - self.started_at
        return f"{STAGE_LABELS.get(self.stage, self.stage)}... ({seconds:.0f} s)"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (or ``timeout``); true when it ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished
