"""The command line's commands that run no model never load torch or torchvision.

Every ``python -m core ...`` process paid for torch (3-5 s on a quiet machine, 17 s under load) because
the settings imported the tiling and test-time augmentation modules; the tests run the CLI as hundreds
of subprocesses. Checked in a fresh interpreter: the CLI and the modules of its no-model commands are
imported, then such commands run for real (``core.cli.main``) on a fresh studio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_accounts import USER, add_accounts

ROOT = Path(__file__).resolve().parent.parent

HEAVY = ("torch", "torchvision")
# The modules behind tools create/list/show/set/roi/classes/export, samples, review, models list/promote/
# rollback/delete, audit, users, api tokens, keys, analytics export, store check, outputs and recipes.
NO_MODEL_MODULES = (
    "core.cli", "core.tools", "core.tool_settings", "core.inspect.models", "core.samples", "core.mvtec",
    "core.dataset", "core.export", "core.reviews", "core.model_versions", "core.audit_cli", "core.audit_trail",
    "core.auth.cli", "core.api.tokens", "core.bundle.export", "core.bundle.signing", "core.analytics.export",
    "core.store_check", "core.line.outputs", "core.line.recipes",
)
COMMANDS = (
    ("tools", "create", "cells", "--classes", "good,defective"),
    ("tools", "list"),
    ("tools", "set", "cells", "audit_share=0.1", "robustness.tta=mirror,shift", "tiling.mode=auto"),
    ("tools", "roi", "cells", "0.1,0.1,0.9,0.9"),
    ("tools", "show", "cells"),
    ("review", "queue", "--tool", "cells"),
    ("models", "list", "--tool", "cells"),
    ("samples", "stats", "--tool", "cells"),
    ("audit", "--tool", "cells"),
)
PROGRAM = """
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
imported = [m for m in {heavy!r} if m in sys.modules]
from core.cli import main
codes = [main(list(argv)) for argv in {commands!r}]
print(json.dumps({{"imported": imported, "codes": codes, "ran": [m for m in {heavy!r} if m in sys.modules]}}))
"""


@pytest.mark.slow  # one CLI process running nine commands: about 5 s, more under load
def test_no_model_commands_do_not_load_torch(tmp_path: Path) -> None:
    program = PROGRAM.format(modules=NO_MODEL_MODULES, heavy=HEAVY, commands=COMMANDS)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STUDIO_DATA_DIR")}
    env = add_accounts({**env, "STUDIO_DATA_DIR": str(tmp_path / "data")}, [USER])
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["codes"] == [0] * len(COMMANDS), result.stderr
    assert report["imported"] == [], "importing the no-model modules loads " + ", ".join(report["imported"])
    assert report["ran"] == [], "running the no-model commands loads " + ", ".join(report["ran"])
