"""The inspection engine: an image in, one :class:`Inspection` out, the same way on every path.

``predict`` (CLI), the Photo tab, the live camera, the demo stream, version comparison and the line
station all call :func:`inspect` (the live processor calls :func:`judge` and :func:`decide` with its
smoothed scores in between). No Streamlit and no database here: loading is ``core.inspect.models``,
recording is ``core.inspect.recorder``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from core.inspect.decision import NonFiniteScoreError, Verdict, combine, decide_between
from core.inspect.decision import decide as verdict_of
from core.inspect.models import LoadedModel, ToolModels
from core.inspect.roi import region
from core.tool_settings import ToolSettings
from models.augment_names import MIRROR
from models.backbones.shared_pass import shared_passes
from models.registration import cut_at
from models.tta import judge_views

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opinion:
    """One model's view of the judged image: its score and what it names, or why it has none."""

    method: str
    version_id: int
    score: float | None
    probabilities: dict[str, float] = field(default_factory=dict)
    label: str | None = None  # the defect class the model names (None: it names none)
    map: np.ndarray | None = field(default=None, repr=False, compare=False)  # (h, w) float32 in [0, 1]
    regions: list[Any] = field(default_factory=list, repr=False, compare=False)
    error: str | None = None


@dataclass(frozen=True)
class ModelVerdict:
    """A deciding model's verdict with the rule it decided by (``verdict`` None: ``error`` says why)."""

    method: str
    version_id: int
    threshold: float
    review_band: float
    verdict: Verdict | None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The one opinions format (stored on the inspection, printed by ``predict``, sent to the line)."""
        if self.verdict is None:
            return {"version": self.version_id, "error": self.error}
        return {"version": self.version_id, "decision": self.verdict.decision, "label": self.verdict.label,
                "score": round(self.verdict.score, 6), "threshold": round(self.threshold, 6)}


@dataclass(frozen=True)
class Inspection:
    """What the engine concludes about one part (see the module doc)."""

    tool: str
    tool_id: int
    verdict: Verdict
    models: dict[str, ModelVerdict]
    errors: dict[str, str]  # models that could not take part, and why
    degraded: bool
    probabilities: dict[str, float]  # class probabilities of the first model that names classes
    box: tuple[int, int, int, int]  # the judged region of the image, in pixels
    crop: np.ndarray = field(repr=False, compare=False)  # the judged image (RGB uint8)
    map: np.ndarray | None = field(default=None, repr=False, compare=False)  # combined defect map
    regions: list[Any] = field(default_factory=list, repr=False, compare=False)
    good_only_score: float | None = None  # score of the first deciding model that learns from goods only
    ms: float = 0.0
    settings: ToolSettings = field(default_factory=ToolSettings, repr=False, compare=False)  # the tool's
    combined_score: float | None = None  # the operating point's combined score, when one decided

    @property
    def decision(self) -> str:
        return self.verdict.decision

    @property
    def version_ids(self) -> dict[str, int]:
        return {method: m.version_id for method, m in self.models.items()}

    @property
    def deciding_version(self) -> int | None:
        """The version of the first deciding model (None only for an inspection built without models)."""
        return next((m.version_id for m in self.models.values()), None)

    def opinions_json(self) -> dict[str, Any]:
        opinions: dict[str, Any] = {method: {"error": error} for method, error in self.errors.items()}
        opinions.update({method: m.as_json() for method, m in self.models.items()})
        return opinions

    def as_dict(self, path: str, inspection_id: int | None = None) -> dict[str, Any]:
        """``predict``'s line for one image."""
        return {"path": path, "decision": self.verdict.decision, "label": self.verdict.label,
                "score": round(self.verdict.score, 6),
                "scores": {k: round(v, 6) for k, v in self.probabilities.items()},
                "model_version": self.deciding_version, "ms": round(self.ms, 2), "inspection_id": inspection_id,
                "models": self.opinions_json(), "degraded": self.degraded,
                "combined_score": None if self.combined_score is None else round(self.combined_score, 6),
                "regions": [r.as_dict()["box"] for r in self.regions]}


def _judge_one(model: LoadedModel, crop: np.ndarray, variants: tuple[str, ...]) -> Opinion:
    try:
        judgement = judge_views(model.model, [crop], variants)[0]
        score = float(judgement.score)
        if not math.isfinite(score):
            raise NonFiniteScoreError(f"the model gave a score of {score}")
    except Exception as error:  # a model that cannot judge must not let the part pass
        log.error("model %s v%s could not judge a part: %s", model.method, model.version_id, error)
        return Opinion(model.method, model.version_id, None, error=f"the {model.method} model failed: {error}")
    return Opinion(model.method, model.version_id, score, dict(judgement.probabilities), judgement.label,
                   judgement.map, list(judgement.regions))


def judge(models: ToolModels, crop: np.ndarray, tta: bool = False) -> list[Opinion]:
    """Each deciding model's opinion of one RGB crop ``(H, W, 3)``, in registry order, averaged over the
    tool's test-time variants (``robustness.tta``) and, with ``tta`` (the Live page's toggle), the mirror.
    Models sharing a backbone and preprocessing share its pass over the crop (``shared_passes``): the
    cross-check costs one backbone pass and two heads, on one core."""
    variants = models.settings.robustness.tta + ((MIRROR,) if tta else ())
    with shared_passes():
        return [_judge_one(model, crop, variants) for model in models.models]


def combined_map(opinions: list[Opinion]) -> np.ndarray | None:
    """The models' defect maps combined (maximum), at the size of the largest one."""
    maps = [o.map for o in opinions if o.map is not None]
    if not maps:
        return None
    size = max(maps, key=lambda m: m.size).shape
    return np.maximum.reduce([m if m.shape == size else cv2.resize(m, size[::-1]) for m in maps])


def decide_opinions(models: ToolModels, opinions: list[Opinion],
                    scores: dict[str, float] | None = None) -> tuple[Verdict, dict[str, ModelVerdict]]:
    """Each model's verdict and the combined one; ``scores`` replaces a model's own score (the Live
    page's moving average). A model without a score sends the part to review (fail closed)."""
    verdicts: dict[str, ModelVerdict] = {}
    for model, opinion in zip(models.models, opinions, strict=True):
        score = opinion.score if scores is None or opinion.score is None else scores.get(model.method, opinion.score)
        verdict, error = None, opinion.error
        if score is not None:
            try:
                verdict = verdict_of(score, models.good_class, opinion.label, model.threshold, model.review_band)
            except NonFiniteScoreError as failure:
                error = f"the {model.method} model failed: {failure}"
        verdicts[model.method] = ModelVerdict(model.method, model.version_id, model.threshold, model.review_band,
                                              verdict, error)
    decided = [v.verdict for v in verdicts.values() if v.verdict is not None]
    if len(decided) < len(verdicts):  # fail closed: a person looks at it
        label = next((v.label for v in decided if v.decision != "pass"), models.good_class)
        return Verdict("review", label, max((v.score for v in decided), default=1.0)), verdicts
    combined = combined_score(models, verdicts)
    if combined is not None:
        point = models.operating_point
        assert point is not None
        label = next((o.label for o in opinions if o.label), None)
        return decide_between(combined, models.good_class, label, point.lo, point.hi), verdicts
    return combine(decided), verdicts


def combined_score(models: ToolModels, verdicts: dict[str, ModelVerdict]) -> float | None:
    """The operating point's combined score of the models' scores (None: no point applies, or a model
    gave no score)."""
    point = models.operating_point
    if point is None or any(v.verdict is None for v in verdicts.values()):
        return None
    return point.combination.score({method: v.verdict.score for method, v in verdicts.items()
                                    if v.verdict is not None})


def decide(models: ToolModels, opinions: list[Opinion], crop: np.ndarray, box: tuple[int, int, int, int],
           scores: dict[str, float] | None = None, ms: float = 0.0) -> Inspection:
    """The :class:`Inspection` of a judged crop (see :func:`decide_opinions`)."""
    verdict, verdicts = decide_opinions(models, opinions, scores)
    combined = combined_score(models, verdicts)
    probabilities = next((o.probabilities for o in opinions if o.probabilities), {})
    good_only = next((o.score for m, o in zip(models.models, opinions, strict=True)
                      if not m.names_classes and o.score is not None), None)
    regions = [r for o in opinions for r in o.regions]
    return Inspection(models.tool, models.tool_id, verdict, verdicts, dict(models.errors), models.degraded,
                      probabilities, box, crop, combined_map(opinions), regions, good_only, ms, models.settings,
                      combined)


def cut(models: ToolModels, image: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """The crop the models judge and where it lies: the region ``box`` of ``image`` (placement None), or,
    when the tool's version was trained with position correction (``robustness.position``), that region
    cut again where the part lies in ``image`` with its placement (``models.registration``: ``cut_at``;
    ``map_onto_region`` lays the crop's map back onto the region as drawn)."""
    locator = models.locator
    placed = None if locator is None else locator.place(image, box)
    return cut_at(image, box, placed), placed


def inspect(models: ToolModels, image: np.ndarray, roi: str = "auto", tta: bool = False) -> Inspection:
    """Judge one RGB image ``(H, W, 3)``: the ROI rule (``core.inspect.roi``), position correction
    (:func:`cut`), every deciding model, the tool's thresholds and policy."""
    started = time.perf_counter()
    height, width = image.shape[:2]
    box = region(width, height, models.roi, roi, models.settings.roi_frame)
    crop, _ = cut(models, image, box)
    opinions = judge(models, crop, tta)
    return decide(models, opinions, crop, box, ms=(time.perf_counter() - started) * 1000)
