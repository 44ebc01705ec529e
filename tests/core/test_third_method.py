"""The registry's proof: the kNN method (models/knn, registered by one line) trains, is chosen by the
policy and judges parts through the one engine, with no code of its own in core/."""

from __future__ import annotations

from pathlib import Path

from core.audit import SYSTEM
from core.config import Settings
from core.inspect.service import predict_image
from core.samples import import_path
from core.studio import open_studio
from core.tool_settings import change_settings, policies
from core.tools import create_tool, get_tool
from core.training import train


def test_knn_trains_and_decides_through_the_engine(tmp_path: Path, elpv_subset: Path) -> None:
    studio = open_studio(Settings(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'studio.db'}"))
    create_tool(studio, "cells", "good,defective", actor=SYSTEM)
    import_path(studio, "cells", elpv_subset, actor=SYSTEM)
    result = train(studio, "cells", "knn", profile="fast", actor=SYSTEM)
    assert result.method == "knn" and result.n_samples == 20
    assert "knn only" in policies()
    assert get_tool(studio, "cells").active_versions == {"knn": result.version_id}
    change_settings(studio, "cells", SYSTEM, {"policy": "knn only"})
    cell = sorted((elpv_subset / "defective").glob("*.png"))[0]
    row = predict_image(studio, "cells", cell.name, cell.read_bytes(), actor=SYSTEM).as_dict()
    assert set(row["models"]) == {"knn"} and row["models"]["knn"]["version"] == result.version_id
    assert row["decision"] in ("pass", "fail", "review") and not row["degraded"]
    assert row["label"] in ("good", "anomaly")
