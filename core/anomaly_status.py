"""What the Train page shows of a tool's anomaly model: goods' scores, threshold, advice."""

from __future__ import annotations

from dataclasses import dataclass

from core.studio import Studio
from core.tools import DEFAULT_SETTINGS, require_tool
from models.anomaly.calibration import false_alarm_bound, more_goods_advised
from storage import repository as repo


@dataclass(frozen=True)
class AnomalyStatus:
    version_id: int
    n_good: int
    reference_scores: list[float]  # normalised out-of-fold scores of the training goods
    threshold: float  # the tool's anomaly threshold on the normalised scale
    policy: str
    train_seconds: float

    @property
    def more_goods_advised(self) -> int:
        return more_goods_advised(self.n_good)

    @property
    def false_alarm_bound(self) -> float:
        """At most this share of good parts goes past the calibrated threshold (0.5)."""
        return false_alarm_bound(self.n_good)


def anomaly_status(studio: Studio, tool_name: str) -> AnomalyStatus | None:
    """The tool's active anomaly model as the Train page shows it, or None when it has none."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        if tool.active_anomaly_id is None:
            return None
        version = repo.get_model_version(session, tool.active_anomaly_id)
        settings = {**DEFAULT_SETTINGS, **(tool.settings or {})}
        metrics = version.metrics or {}
        return AnomalyStatus(version.id, version.n_samples, [float(s) for s in metrics.get("reference_scores", [])],
                             float(settings["anomaly_threshold"]), str(settings["policy"]), version.train_seconds)
