"""Is the one inspection engine slower than the three paths it replaced? Side by side, in one run.

Checks out the baseline commit (``--baseline``, default the last commit before the engine) in a
temporary git worktree and, in alternating rounds on the same machine, runs each tree's own
``bench/live.py`` (the frame processor the Live page uses: ``fps_one_tool``) and times each tree's
``predict`` function (decode + inspect, no recording; a classifier trained on the 40 committed ELPV
cells with the same seed, the default profile) over the same cells. Alternating rounds share the
machine's load fairly; medians over rounds are reported. The last line is one JSON object.

    .venv/bin/python bench/engine_speed.py [--rounds 3] [--frames 120] [--baseline 3c4533e]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "3c4533e"  # main before the engine (three inspection paths)

PREDICT_TIMER = r"""
import json, statistics, sys, tempfile, time
from pathlib import Path
root = Path(sys.argv[1]); sys.path.insert(0, str(root))
from core.config import Settings
from core.samples import import_path
from core.studio import open_studio
from core.tools import create_tool
from core.training import train
try:
    from core.inspect.service import predict_image
except ImportError:  # the baseline's path
    from core.inference import predict_image
try:  # trees with accounts: state-changing calls name their actor
    from core.audit import SYSTEM
    as_system = {"actor": SYSTEM}
except ImportError:
    as_system = {}
cells = sorted((root / "tests" / "data" / "elpv").rglob("*.png"))
with tempfile.TemporaryDirectory() as folder:
    studio = open_studio(Settings(Path(folder), f"sqlite:///{folder}/studio.db"))
    create_tool(studio, "cells", "good,defective", **as_system)
    import_path(studio, "cells", root / "tests" / "data" / "elpv", **as_system)
    train(studio, "cells", seed=0, **as_system)
    data = [p.read_bytes() for p in cells]
    for blob in data[:5]:
        predict_image(studio, "cells", "warm.png", blob, record=False, **as_system)
    times = []
    for _ in range(int(sys.argv[2])):
        for blob in data:
            started = time.perf_counter()
            predict_image(studio, "cells", "x.png", blob, record=False, **as_system)
            times.append((time.perf_counter() - started) * 1000)
    print(json.dumps({"predict_ms": statistics.median(times), "n": len(times)}))
"""


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def run(tree: Path, args: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed in {tree}:\n{done.stderr[-2000:]}")
    return last_json(done.stdout)


def measure(tree: Path, frames: int, repeats: int) -> dict[str, float]:
    live = run(tree, ["bench/live.py", "--frames", str(frames), "--soak", "0"])
    predict = run(tree, ["-c", PREDICT_TIMER, str(tree), str(repeats)])
    return {"fps_one_tool": float(live["fps_one_tool"]), "predict_ms": float(predict["predict_ms"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BASELINE, help="git ref of the code to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians are reported)")
    parser.add_argument("--frames", type=int, default=120, help="frames per bench/live.py configuration")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the 40 cells per predict timing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        baseline = Path(folder) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(baseline), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            (baseline / ".venv").symlink_to(ROOT / ".venv")
            rounds: dict[str, list[dict[str, float]]] = {"baseline": [], "engine": []}
            for index in range(args.rounds):
                order = [("baseline", baseline), ("engine", ROOT)]
                for name, tree in order if index % 2 == 0 else reversed(order):
                    rounds[name].append(measure(tree, args.frames, args.repeats))
                    print(f"round {index + 1} {name}: {rounds[name][-1]}", file=sys.stderr, flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT, capture_output=True)
    medians = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for name, runs in rounds.items()}
    result = {
        "baseline": args.baseline, "rounds": args.rounds, **{f"{k}_{n}": round(v, 2) for n, m in medians.items()
                                                             for k, v in m.items()},
        "fps_ratio": round(medians["engine"]["fps_one_tool"] / medians["baseline"]["fps_one_tool"], 3),
        "predict_ms_ratio": round(medians["engine"]["predict_ms"] / medians["baseline"]["predict_ms"], 3),
        "spread": {n: {k: [round(r[k], 2) for r in runs] for k in runs[0]} for n, runs in rounds.items()},
    }
    print("| code | fps_one_tool (median) | predict ms per image (median) |")
    print("| --- | --- | --- |")
    for name in ("baseline", "engine"):
        print(f"| {name} | {medians[name]['fps_one_tool']:.2f} | {medians[name]['predict_ms']:.1f} |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
