"""PyTorch against onnxruntime: milliseconds per image at batch 1, each profile and each method, side by side.

Per profile, a classifier, an anomaly model and a kNN model are trained on the committed ELPV cells
(20 good + 20 defective; the anomaly and kNN models on the goods) and each is exported to ONNX
(``models/onnx_runtime.py``: full graph optimisation, 2 intra-op threads, sequential execution). Then, in
alternating rounds (PyTorch first in even rounds, onnxruntime first in odd ones, so both share the
machine's load fairly), ``judge([crop])`` (what the engine calls: preprocessing, network, map and
calibration) is timed on each cell, after a warm-up. Medians over every timed call are reported, with
each round's median as the spread. The last line is one JSON object.

    flock /tmp/cpu-heavy.lock .venv/bin/python bench/runtime.py [--rounds 3] [--images 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.anomaly import PatchCoreDetector  # noqa: E402
from models.classifier import FewShotClassifier  # noqa: E402
from models.knn import KnnDetector  # noqa: E402
from models.onnx_runtime import INTRA_OP_THREADS, load_onnx  # noqa: E402
from models.profiles import DEFAULT_PROFILE, PROFILES  # noqa: E402

ELPV = ROOT / "tests" / "data" / "elpv"
WARM_UP = 3


def cells(label: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted((ELPV / label).glob("*.png"))]


def trained(profile: str, folder: Path) -> dict[str, dict[str, object]]:
    """Each method of ``profile`` on both runtimes: ``{method: {"torch": model, "onnx": twin}}``."""
    good, defective = cells("good"), cells("defective")
    images, labels = good + defective, ["good"] * len(good) + ["crack"] * len(defective)
    models = {"classifier": FewShotClassifier(profile=profile).fit(images, labels),
              "anomaly": PatchCoreDetector(profile=profile, synthetic_images=40).fit(images, labels),
              "knn": KnnDetector(profile=profile).fit(images, labels)}
    return {name: {"torch": model, "onnx": load_onnx(model, folder / f"{profile}-{name}")}
            for name, model in models.items()}


def timed(model: object, images: list[np.ndarray]) -> list[float]:
    """Milliseconds of ``judge([image])`` per image."""
    times = []
    for image in images:
        started = time.perf_counter()
        model.judge([image])
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians are reported)")
    parser.add_argument("--images", type=int, default=20, help="cells timed per round and runtime")
    parser.add_argument("--profiles", default=",".join(PROFILES), help="comma-separated profiles")
    args = parser.parse_args()
    images = (cells("good") + cells("defective"))[:: max(1, 40 // args.images)][: args.images]
    results: dict[str, dict[str, dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for profile in args.profiles.split(","):
            started = time.perf_counter()
            models = trained(profile, Path(folder))
            print(f"{profile}: trained and exported in {time.perf_counter() - started:.0f} s", file=sys.stderr,
                  flush=True)
            results[profile] = {}
            for method, pair in models.items():
                for model in pair.values():
                    timed(model, images[:WARM_UP])
                times: dict[str, list[float]] = {"torch": [], "onnx": []}
                rounds: dict[str, list[float]] = {"torch": [], "onnx": []}
                for index in range(args.rounds):
                    order = ["torch", "onnx"] if index % 2 == 0 else ["onnx", "torch"]
                    for runtime in order:
                        these = timed(pair[runtime], images)
                        times[runtime] += these
                        rounds[runtime].append(round(statistics.median(these), 2))
                torch_ms, onnx_ms = statistics.median(times["torch"]), statistics.median(times["onnx"])
                results[profile][method] = {"torch_ms": round(torch_ms, 2), "onnx_ms": round(onnx_ms, 2),
                                            "speedup": round(torch_ms / onnx_ms, 2), "round_medians": rounds}
                print(f"{profile} {method}: {results[profile][method]}", file=sys.stderr, flush=True)
    print("| profile | method | PyTorch ms / image | onnxruntime ms / image | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for profile, methods in results.items():
        for method, r in methods.items():
            print(f"| {profile} | {method} | {r['torch_ms']:.1f} | {r['onnx_ms']:.1f} | {r['speedup']:.2f}x |")
    default = results.get(DEFAULT_PROFILE, {})
    print(json.dumps({"rounds": args.rounds, "images": len(images), "batch": 1, "warm_up": WARM_UP,
                      "torch_threads": torch.get_num_threads(), "onnxruntime_threads": INTRA_OP_THREADS,
                      "torch": torch.__version__, "onnxruntime": ort.__version__,
                      "default_profile": DEFAULT_PROFILE,
                      "default_speedup": {m: r["speedup"] for m, r in default.items()},
                      "results": results}))


if __name__ == "__main__":
    main()
