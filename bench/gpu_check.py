"""GPU parity and speed of every registered method: the same fitted models judged on the CPU and on
the GPU (models/device.py, ``STUDIO_DEVICE``).

Each method is fitted on the CPU on the committed ELPV cells (tests/data/elpv, profile ``fast``),
saved, and loaded once per device; the largest score difference and the median ms to judge one cell
(batch 1, 20 runs after 3 warm-ups) are compared. Prints one JSON line last; without a GPU it says
so and exits cleanly.

    .venv/bin/python bench/gpu_check.py [--profile fast]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from models.device import ENV  # noqa: E402
from models.registry import build, load_model, method_names  # noqa: E402

CELLS = ROOT / "tests" / "data" / "elpv"


def _cells(name: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted((CELLS / name).glob("*.png"))]


def _median_ms(judge, image: np.ndarray, runs: int = 20) -> float:
    for _ in range(3):
        judge([image])
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        judge([image])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _on(device: str, folder: Path, probes: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Scores of ``probes`` and median ms per cell of the model in ``folder`` loaded on ``device``."""
    os.environ[ENV] = device
    model = load_model(folder)
    scores = np.array([j.score for j in model.judge(probes)])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return scores, _median_ms(model.judge, probes[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="fast")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"gpu": False, "message": "no GPU: torch.cuda.is_available() is False; nothing to compare",
                          "torch": torch.__version__, "cuda_build": torch.version.cuda}))
        return
    goods, defects = _cells("good"), _cells("defective")
    images, labels = goods[:15] + defects[:15], ["good"] * 15 + ["defective"] * 15
    probes = goods[15:] + defects[15:]
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in method_names():
            os.environ[ENV] = "cpu"
            folder = Path(scratch) / name
            build(name, profile=args.profile, good_class="good").fit(images, labels).save(folder)
            cpu, cpu_ms = _on("cpu", folder, probes)
            gpu, gpu_ms = _on("cuda", folder, probes)
            results[name] = {"max_abs_score_difference": float(np.abs(cpu - gpu).max()),
                             "cpu_ms": round(cpu_ms, 2), "gpu_ms": round(gpu_ms, 2)}
            print(f"# {name}: {results[name]}", file=sys.stderr, flush=True)
    print(json.dumps({"gpu": True, "device": torch.cuda.get_device_name(0), "profile": args.profile,
                      "methods": results}))


if __name__ == "__main__":
    main()
