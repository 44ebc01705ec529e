"""Chaos: hypothesis fuzzing of the image and zip readers (``tests/chaos/fuzz_readers.py``), 2,000
inputs each, in a process of its own: no traceback, no input over 10 s, peak memory under 1 GB."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.chaos.harness import ROOT, record

pytestmark = pytest.mark.chaos

EXAMPLES = 2000
MEMORY_LIMIT_MB = 1024


def test_fuzz_readers() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "tests.chaos.fuzz_readers", str(EXAMPLES)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, result.stderr[-3000:]
    counts = json.loads(lines[-1])
    record("fuzz_readers", {**{reader: {k: v for k, v in counts[reader].items() if k != "failure"}
                                for reader in ("image_reader", "zip_reader")},
                            "peak_rss_mb": counts["peak_rss_mb"]})
    for reader in ("image_reader", "zip_reader"):
        assert "failure" not in counts[reader], counts[reader]["failure"]
        assert counts[reader]["inputs"] >= EXAMPLES
        assert counts[reader]["slowest_seconds"] < 10
    assert counts["peak_rss_mb"] < MEMORY_LIMIT_MB
    assert result.returncode == 0
