"""``manifest.json``: the bundle's format version, the studio version that wrote it and every file with
its SHA-256 and size. The signature (``manifest.sig``) is over these exact bytes."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from core.config import PROJECT_ROOT
from core.errors import InvalidInputError

FORMAT = "inspection-studio/tool-bundle"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
MAX_JSON_BYTES = 8 * 1024**2  # manifest.json, tool.json: far larger than any real one
RUNTIME_GRAPH_SUFFIX = ".onnx"  # onnxruntime graphs cached beside a model: never exported, refused on import
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BundleError(InvalidInputError):
    """A bundle that cannot be exported or imported as it is; nothing was written."""


def studio_version() -> str:
    """The studio's version (``pyproject.toml``), ``"unknown"`` when it cannot be read."""
    try:
        return str(tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def safe_member_name(name: str) -> bool:
    """A relative POSIX path with no ``..``, no backslash, no drive letter and no empty part."""
    path = PurePosixPath(name)
    return (bool(name) and "\\" not in name and not path.is_absolute() and ":" not in name
            and all(part not in ("", ".", "..") for part in name.split("/")))


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """What a bundle holds; ``files`` excludes the manifest and its signature."""

    tool: str
    files: tuple[FileEntry, ...]
    studio_version: str
    created_at: str
    format_version: int = FORMAT_VERSION

    def to_bytes(self) -> bytes:
        return json.dumps({
            "format": FORMAT, "format_version": self.format_version, "studio_version": self.studio_version,
            "created_at": self.created_at, "tool": self.tool,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }, indent=1).encode()

    def entry(self, path: str) -> FileEntry:
        return next(f for f in self.files if f.path == path)

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """The manifest in ``data``; BundleError saying what is malformed, or that the format is unknown."""
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BundleError(f"{MANIFEST_NAME} is not valid JSON ({error}); refused") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise BundleError(f"{MANIFEST_NAME} does not describe a tool bundle (format {FORMAT!r}); refused")
        version = raw.get("format_version")
        if version not in SUPPORTED_FORMAT_VERSIONS or isinstance(version, bool):
            raise BundleError(f"bundle format version {version!r} is unknown to this studio (it reads "
                              f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}); update the studio or export "
                              "the bundle again from a matching one")
        files = raw.get("files")
        if not isinstance(files, list):
            raise BundleError(f"{MANIFEST_NAME} has no list of files; refused")
        entries = tuple(_entry(item) for item in files)
        paths = [e.path for e in entries]
        if len(set(paths)) != len(paths):
            raise BundleError(f"{MANIFEST_NAME} lists a file twice; refused")
        return cls(_text(raw, "tool"), entries, _text(raw, "studio_version"), _text(raw, "created_at"), version)


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or len(value) > 200:
        raise BundleError(f"{MANIFEST_NAME}: {key!r} must be a short text; refused")
    return value


def _entry(item: Any) -> FileEntry:
    if not isinstance(item, dict):
        raise BundleError(f"{MANIFEST_NAME}: every file is an object with path, sha256 and size; refused")
    path, sha, size = item.get("path"), item.get("sha256"), item.get("size")
    if not isinstance(path, str) or not safe_member_name(path) or path in (MANIFEST_NAME, SIGNATURE_NAME):
        raise BundleError(f"{MANIFEST_NAME} lists an unsafe file name {path!r}; refused")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise BundleError(f"{MANIFEST_NAME}: {path} has no valid sha256; refused")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BundleError(f"{MANIFEST_NAME}: {path} has no valid size; refused")
    return FileEntry(path, sha, size)
