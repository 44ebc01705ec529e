"""The demo project: a ``solar-cell`` tool built from the ELPV dataset (CC BY-NC-SA 4.0).

Real electroluminescence images of solar cells (Deitsch et al. 2019, Buerhop-Lutz et al. 2018),
from the ``elpv-dataset`` package: a few dozen labelled samples, a trained model, and a few hundred
real predictions spread over the past two weeks, so every page shows something without a camera.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import numpy as np

from core.audit import SYSTEM
from core.images import encode_png
from core.inspect.engine import inspect
from core.inspect.models import load_tool_models
from core.inspect.recorder import RecordContext
from core.live.demo import HEIGHT, WIDTH, placed_roi
from core.reviews import review_queue, submit_review
from core.samples import Candidate, add_images
from core.studio import Studio
from core.tools import create_tool, list_tools, set_roi
from core.training import train
from storage.tables import utc_now

DEMO_TOOL = "solar-cell"
DEMO_CLASSES = ["good", "defective"]
TRAIN_PER_CLASS = 30
INSPECTIONS = 300
DAYS = 14

DemoProgress = Callable[[str, float], None]


def load_elpv() -> tuple[np.ndarray, np.ndarray]:
    """ELPV cells ``(N, 300, 300)`` uint8 and labels: 1 when defect probability >= 0.5."""
    from elpv_dataset.utils import load_dataset

    images, probabilities, _types = load_dataset()
    return images, (probabilities >= 0.5).astype(int)


def _rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def build_demo(studio: Studio, seed: int = 0, progress: DemoProgress | None = None) -> dict[str, int]:
    """Create the demo tool with samples, a classifier and an anomaly model, inspections and some reviews.

    Does nothing (returns an empty dict) when the demo tool exists already.
    """
    report = progress or (lambda stage, fraction: None)
    if any(tool.name == DEMO_TOOL for tool in list_tools(studio)):
        return {}
    report("loading ELPV", 0.0)
    images, defective = load_elpv()
    rng = np.random.default_rng(seed)
    good_idx = rng.permutation(np.flatnonzero(defective == 0))
    bad_idx = rng.permutation(np.flatnonzero(defective == 1))
    train_idx = np.concatenate([good_idx[:TRAIN_PER_CLASS], bad_idx[:TRAIN_PER_CLASS]])
    rest = rng.permutation(np.concatenate([good_idx[TRAIN_PER_CLASS:], bad_idx[TRAIN_PER_CLASS:]]))[:INSPECTIONS]

    create_tool(studio, DEMO_TOOL, DEMO_CLASSES, actor=SYSTEM)
    # the region where the demo stream (core.live.demo.place) shows the cell: live judges the part alone
    set_roi(studio, DEMO_TOOL, placed_roi(images.shape[2], images.shape[1]), SYSTEM, (WIDTH, HEIGHT))
    candidates = [
        Candidate(f"elpv-{i}.png", DEMO_CLASSES[defective[i]], lambda i=i: encode_png(images[i]))
        for i in train_idx
    ]
    imported = add_images(studio, DEMO_TOOL, candidates, "demo", lambda d, t: report("samples", d / t), actor=SYSTEM)
    train(studio, DEMO_TOOL, progress=lambda stage, f: report(f"training: {stage}", f), actor=SYSTEM)
    # the anomaly model on the good samples, so that the demo shows the cross-check, not degraded mode
    train(studio, DEMO_TOOL, "anomaly", progress=lambda stage, f: report(f"anomaly model: {stage}", f), actor=SYSTEM)

    models = load_tool_models(studio, DEMO_TOOL)
    now = utc_now()
    truth: dict[int, str] = {}
    for n, i in enumerate(rest, start=1):
        when = now - timedelta(seconds=float(rng.uniform(0, (DAYS - 1) * 86400)))
        inspection = inspect(models, _rgb(images[i]))
        recorded = studio.recorder.record(inspection, RecordContext("demo-station", created_at=when))
        truth[recorded.inspection_id] = DEMO_CLASSES[defective[i]]
        report("inspections", n / len(rest))

    queue, waiting = review_queue(studio, DEMO_TOOL, limit=INSPECTIONS)
    for item in queue[: waiting // 2]:
        submit_review(studio, item.inspection_id, truth[item.inspection_id], reviewer=replace(SYSTEM, name="demo"))
    report("done", 1.0)
    return {"samples": imported.imported, "inspections": len(rest), "reviews": waiting // 2}
