"""bench/analytics_plant.py on a small plant: the bulk-filled rollups equal the ones add_inspection and
add_review keep row by row (--verify), both sources give the same counts, and the last line is the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_small_plant_run_verifies_the_rollups_and_reports_json() -> None:
    done = subprocess.run([sys.executable, "bench/analytics_plant.py", "--rows", "3000", "--verify", "--repeats", "1",
                           "--naive-repeats", "1"], cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    assert "bulk == add_inspection's" in done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["n"] == 3000 and result["verified"] and result["pg_page_s"] > 0 and result["naive_page_s"] > 0
    assert result["page_rollup_inspections"] == result["page_inspections_inspections"] > 0
