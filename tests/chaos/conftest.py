"""The chaos suite prints what it counted (kill rounds, concurrent rounds, fuzz inputs, losses) at the
end of the run, whether it passed or not."""

from __future__ import annotations

import json
from typing import Any

from tests.chaos.harness import COUNTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not COUNTS:
        return
    terminalreporter.section("chaos suite counts")
    for name, counts in sorted(COUNTS.items()):
        terminalreporter.write_line(f"{name}: {json.dumps(counts, sort_keys=True)}")
