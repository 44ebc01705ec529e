"""A tool as the live processor needs it: ROI, decision settings and loaded models."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.decision import ANOMALY, CLASSIFIER, models_to_run
from core.errors import NotFoundError, StudioError
from core.inference import active_model, tool_models
from core.live.opinions import AnomalySource, ClassifierSource, OpinionSource
from core.live.settings import LiveConfig
from core.studio import Studio
from core.tools import require_tool


class NoModelError(NotFoundError):
    """The tool has no trained model yet."""


class ModelUnavailableError(StudioError):
    """The tool's model files are missing or damaged."""


@dataclass
class LiveTool:
    """One inspection tool on the live station.

    ``sources`` are the models its policy runs (the classifier first, then the anomaly model);
    ``degraded`` says that a model the policy wants is missing, so the other decides alone (``errors``
    says why). A tool that shares the station with the one whose live settings are on screen decides
    with its own saved threshold and review band (``own_config``). Loaded models come from the
    process-wide cache of :mod:`core.inference`, and their backbones from the shared registry, so
    sessions and tools with the same model or backbone share one copy.
    """

    id: int
    name: str
    good_class: str
    roi: list[float] | None
    model_version_id: int
    sources: list[OpinionSource] = field(default_factory=list)
    degraded: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    own_config: LiveConfig | None = None  # its saved threshold and band; None: the live settings decide


def load_live_tool(studio: Studio, tool_name: str) -> LiveTool:
    """The tool with its ROI and the models of its policy; NoModelError / ModelUnavailableError say
    what is wrong."""
    with studio.transaction() as session:
        row = require_tool(session, tool_name)
        if row.active_model_id is None and row.active_anomaly_id is None:
            raise NoModelError(f"tool {tool_name!r} has no trained model yet: train one on the Train page")
        roi = list(row.roi) if row.roi else None
    try:
        models = tool_models(studio, tool_name)
    except NotFoundError:
        raise
    except StudioError as error:
        raise ModelUnavailableError(str(error)) from error
    used, degraded = models_to_run(models.policy, models.available())
    sources: list[OpinionSource] = []
    if CLASSIFIER in used and models.classifier is not None:
        sources.append(ClassifierSource(models.classifier.model, models.good_class))
    if ANOMALY in used and models.anomaly is not None:
        sources.append(AnomalySource(models.anomaly.model, models.anomaly.threshold))
    deciding = models.classifier if CLASSIFIER in used and models.classifier is not None else models.anomaly
    assert deciding is not None
    return LiveTool(models.tool_id, tool_name, models.good_class, roi, deciding.version_id, sources, degraded,
                    models.errors)


def live_config(studio: Studio, tool_name: str) -> LiveConfig:
    """The live settings saved on the tool; the active classifier's calibrated threshold and review
    band where the user set none (as ``predict`` decides), defaults for the rest."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        settings, has_model = dict(tool.settings or {}), tool.active_model_id is not None
    if has_model:
        try:
            model = active_model(studio, tool_name)
        except StudioError:  # the page says why the model is unusable; the settings still open
            pass
        else:
            settings = {"threshold": model.threshold, "review_band": model.review_band, **settings}
    return LiveConfig.from_tool_settings(settings)


def save_live_config(studio: Studio, tool_name: str, config: LiveConfig) -> None:
    """Save live settings on the tool: threshold and review band where inspection reads them, the
    rest under ``settings["live"]``. Takes effect without retraining."""
    values = config.validated().as_dict()
    decision = {"threshold": values.pop("threshold"), "review_band": values.pop("review_band")}
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        tool.settings = {**(tool.settings or {}), **decision, "live": values}
