"""Architecture rules, checked on the source (ast) rather than by importing anything.

* core/, models/ and storage/ never import streamlit (the UI lives in app.py and pages/);
* models/ never imports storage or core (it works on arrays and folders only);
* storage/ never imports models, core, torch or torchvision;
* nothing calls ``torch.load`` without ``weights_only=True`` and nothing imports pickle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UI_PACKAGES = {"streamlit", "streamlit_webrtc"}
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill"}
FORBIDDEN_IMPORTS: dict[str, set[str]] = {
    "core": UI_PACKAGES,
    "models": UI_PACKAGES | {"storage", "core"},
    "storage": UI_PACKAGES | {"models", "core", "torch", "torchvision"},
}


@dataclass(frozen=True)
class Imported:
    module: str  # full dotted name as written
    line: int

    @property
    def top(self) -> str:
        return self.module.split(".", 1)[0]


def python_files(*parts: str) -> list[Path]:
    files: list[Path] = []
    for part in parts:
        path = ROOT / part
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return [f for f in files if "__pycache__" not in f.parts]


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imports_of(tree: ast.Module) -> list[Imported]:
    """Every absolute import, plus ``importlib.import_module("x")`` / ``__import__("x")`` with a literal."""
    found: list[Imported] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Imported(alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:  # relative imports stay inside their own package
                found.append(Imported(node.module, node.lineno))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append(Imported(node.args[0].value, node.lineno))
    return found


def unsafe_torch_loads(tree: ast.Module) -> list[int]:
    """Lines calling ``torch.load`` (under any alias) without a literal ``weights_only=True``."""
    torch_names: set[str] = set()  # names bound to the torch module
    load_names: set[str] = set()  # names bound to torch.load itself
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "torch":
                    torch_names.add(alias.asname or "torch")
                elif alias.name.startswith("torch.") and alias.asname is None:
                    torch_names.add("torch")
        elif isinstance(node, ast.ImportFrom) and node.module == "torch":
            load_names.update(alias.asname or alias.name for alias in node.names if alias.name == "load")
    lines: list[int] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        is_load = (
            isinstance(func, ast.Attribute) and func.attr == "load"
            and isinstance(func.value, ast.Name) and func.value.id in torch_names
        ) or (isinstance(func, ast.Name) and func.id in load_names)
        if not is_load:
            continue
        safe = any(
            kw.arg == "weights_only" and isinstance(kw.value, ast.Constant) and kw.value.value is True
            for kw in node.keywords
        )
        if not safe:
            lines.append(node.lineno)
    return lines


def layer_violations(package: str, tree: ast.Module) -> list[str]:
    forbidden = FORBIDDEN_IMPORTS[package]
    return [f"line {imp.line}: imports {imp.module}" for imp in imports_of(tree) if imp.top in forbidden]


def pickle_imports(tree: ast.Module) -> list[str]:
    return [f"line {imp.line}: imports {imp.module}" for imp in imports_of(tree) if imp.top in PICKLE_MODULES]


# --- the checkers themselves catch what they must (otherwise the rules below prove nothing) -------
def test_checkers_detect_violations() -> None:
    bad = ast.parse(
        "import streamlit as st\n"
        "from streamlit_webrtc import webrtc_streamer\n"
        "from storage import repository\n"
        "import core.tools\n"
        "import torchvision.transforms\n"
        "import importlib\n"
        "importlib.import_module('torch')\n"
        "import pickle\n"
        "from _pickle import loads\n"
        "import torch as T\n"
        "from torch import load as tl\n"
        "T.load('a')\n"
        "T.load('b', weights_only=False)\n"
        "tl('c')\n"
        "T.load('d', weights_only=True)\n"
    )
    assert len(layer_violations("core", bad)) == 2  # streamlit, streamlit_webrtc
    models_hits = layer_violations("models", bad)
    assert any("storage" in v for v in models_hits) and any("core.tools" in v for v in models_hits)
    storage_hits = " ".join(layer_violations("storage", bad))
    for name in ("core.tools", "torchvision.transforms", "imports torch", "streamlit"):
        assert name in storage_hits
    assert len(pickle_imports(bad)) >= 2
    assert unsafe_torch_loads(bad) == [12, 13, 14]

    good = ast.parse("from . import sibling\nimport numpy\nimport torch\ntorch.load('x', weights_only=True)\n")
    assert layer_violations("storage", ast.parse("from . import sibling\nimport numpy\n")) == []
    assert unsafe_torch_loads(good) == []
    assert pickle_imports(good) == []


# --- the rules on the real code ------------------------------------------------------------------
@pytest.mark.parametrize("package", sorted(FORBIDDEN_IMPORTS))
def test_layers_import_only_what_they_may(package: str) -> None:
    files = python_files(package)
    assert files, f"no python files found under {package}/"
    problems = [
        f"{path.relative_to(ROOT)} {violation}"
        for path in files
        for violation in layer_violations(package, parse(path))
    ]
    assert problems == [], "layering broken:\n" + "\n".join(problems)


def test_storage_migrations_are_checked_too() -> None:
    """The layering walk covers the Alembic environment and versions (they import storage.tables)."""
    names = {p.relative_to(ROOT).as_posix() for p in python_files("storage")}
    assert "storage/migrations/env.py" in names
    assert any(n.startswith("storage/migrations/versions/") for n in names)


UNSAFE_SCOPE = ("core", "models", "storage", "pages", "app.py")


def test_torch_load_always_uses_weights_only() -> None:
    files = python_files(*UNSAFE_SCOPE)
    assert any(p.name == "app.py" for p in files) and any("pages" in p.parts for p in files)
    problems = [
        f"{path.relative_to(ROOT)}:{line} torch.load without weights_only=True"
        for path in files
        for line in unsafe_torch_loads(parse(path))
    ]
    assert problems == [], "\n".join(problems)


def test_nothing_imports_pickle() -> None:
    problems = [
        f"{path.relative_to(ROOT)} {hit}"
        for path in python_files(*UNSAFE_SCOPE)
        for hit in pickle_imports(parse(path))
    ]
    assert problems == [], "\n".join(problems)
