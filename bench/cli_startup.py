"""Wall time of command-line invocations that run no model (``python -m core ...`` as subprocesses).

Protocol: one fresh SQLite studio in a temporary folder with one admin account (``tests/cli_accounts.py``)
and one tool ``cells``; each command is run ``--repeat`` times as a new process and the median, minimum and
maximum wall times are printed. With several ``--root`` checkouts (e.g. an export of main and this
branch) the roots alternate within each repeat, so that both see the same machine load. The load
(``os.getloadavg``) is printed before and after. Last stdout line: one JSON object.

    nice -n 19 .venv/bin/python bench/cli_startup.py --root /tmp/main-export --root . --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cli_accounts import USER, add_accounts  # noqa: E402

COMMANDS: dict[str, list[str]] = {
    "tools list --help": ["-m", "core", "tools", "list", "--help"],
    "tools list": ["-m", "core", "tools", "list"],
    "tools show": ["-m", "core", "tools", "show", "cells"],
    "tools set": ["-m", "core", "tools", "set", "cells", "live.smoothing=3"],
    "import core.tool_settings": ["-c", "import core.tool_settings"],
}


def _run(root: Path, args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{root}: {' '.join(args)} failed: {result.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", action="append", type=Path, help="checkout to run (repeatable; default this one)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    roots = [r.resolve() for r in (args.root or [ROOT])]
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as folder:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STUDIO_DATA_DIR")}
        env = add_accounts({**env, "STUDIO_DATA_DIR": folder}, [USER])
        _run(roots[0], ["-m", "core", "tools", "create", "cells", "--classes", "good,defective"], env)
        load_before = os.getloadavg()
        times: dict[str, dict[str, list[float]]] = {str(r): {name: [] for name in COMMANDS} for r in roots}
        for _ in range(args.repeat):
            for name, command in COMMANDS.items():
                for root in roots:
                    times[str(root)][name].append(_run(root, command, env))
        load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f} / {load_before[1]:.2f}, after {load_after[0]:.2f} / "
          f"{load_after[1]:.2f} (1 / 5 min)")
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for root, by_name in times.items():
        print(root)
        summary[root] = {}
        for name, values in by_name.items():
            figures = {"median_s": round(statistics.median(values), 2), "min_s": round(min(values), 2),
                       "max_s": round(max(values), 2)}
            summary[root][name] = figures
            print(f"  {name:28s} median {figures['median_s']:6.2f} s  (min {figures['min_s']:.2f}, "
                  f"max {figures['max_s']:.2f}, n={len(values)})")
    print(json.dumps({"repeat": args.repeat, "load_before": load_before, "load_after": load_after,
                      "roots": summary}))


if __name__ == "__main__":
    main()
