"""What the Train page shows of a tool's good-only model (the anomaly model): the goods' scores,
the threshold it decides with, advice."""

from __future__ import annotations

from dataclasses import dataclass

from core.studio import Studio
from core.tool_settings import ToolSettings
from core.tools import require_tool
from models.anomaly.calibration import false_alarm_bound, more_goods_advised
from models.registry import get_method
from storage import versions as versions_repo


@dataclass(frozen=True)
class AnomalyStatus:
    version_id: int
    method: str
    n_good: int
    reference_scores: list[float]  # normalised out-of-fold scores of the training goods
    threshold: float  # the threshold the model decides with on the normalised scale
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
    """The tool's active good-only model as the Train page shows it, or None when it has none."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        settings = ToolSettings.from_json(tool.settings)
        for method, version in versions_repo.active_versions(session, tool.id).items():
            if get_method(method).learns_from == "good":
                metrics = version.metrics or {}
                return AnomalyStatus(version.id, method, version.n_samples,
                                     [float(s) for s in metrics.get("reference_scores", [])],
                                     float(settings.thresholds.get(method, 0.5)), settings.policy,
                                     version.train_seconds)
    return None
