"""Where the studio keeps its data: read once from the environment."""

from __future__ import annotations

import functools
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Locations of the data folder and the database.

    ``STUDIO_DATA_DIR`` (default ``./data`` at the project root) holds the SQLite database, the
    image store and the model artifacts; ``DATABASE_URL`` selects another database. ``station`` names
    this running studio on every inspection it records (``STUDIO_STATION``, default the host name), so
    that several PCs on one database can be told apart. ``STUDIO_OBJECT_STORE`` (``s3://bucket/prefix``)
    keeps images, thumbnails and model artifacts in S3-compatible storage instead of the data folder.
    """

    data_dir: Path
    database_url: str
    station: str = "default"
    object_store: str | None = None  # STUDIO_OBJECT_STORE (s3://bucket/prefix); None: the data folder

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def locks_dir(self) -> Path:
        return self.data_dir / "locks"


def load_settings() -> Settings:
    """Settings from ``STUDIO_DATA_DIR``, ``DATABASE_URL`` and ``STUDIO_STATION``."""
    data_dir = Path(os.environ.get("STUDIO_DATA_DIR") or PROJECT_ROOT / "data").resolve()
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'studio.db'}"
    station = (os.environ.get("STUDIO_STATION") or socket.gethostname() or "default").strip()[:100]
    object_store = os.environ.get("STUDIO_OBJECT_STORE", "").strip() or None
    return Settings(data_dir=data_dir, database_url=url, station=station, object_store=object_store)


def rtc_configuration() -> dict[str, list[dict[str, object]]]:
    """The WebRTC configuration of every camera widget.

    The default has no ICE servers: host candidates connect a browser and the studio on the same LAN
    (or on one machine) without any outside server, which suits an offline factory. ``STUDIO_ICE_SERVERS``
    may hold a JSON list of RTCIceServer objects, e.g. ``[{"urls": ["stun:stun.local:3478"]}]``.
    """
    raw = os.environ.get("STUDIO_ICE_SERVERS", "").strip()
    if not raw:
        return {"iceServers": []}
    servers = json.loads(raw)
    if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
        raise ValueError("STUDIO_ICE_SERVERS must be a JSON list of objects with a 'urls' key")
    return {"iceServers": servers}


DEFAULT_MAX_IMAGE_SIDE = 2048


def max_image_side() -> int:
    """Longest side (pixels) a stored sample may have; larger images are downscaled on import.

    ``STUDIO_MAX_IMAGE_SIDE`` overrides the default of 2048 (at least 64).
    """
    raw = os.environ.get("STUDIO_MAX_IMAGE_SIDE", "").strip()
    side = int(raw) if raw else DEFAULT_MAX_IMAGE_SIDE
    if side < 64:
        raise ValueError("STUDIO_MAX_IMAGE_SIDE must be at least 64")
    return side


DEFAULT_API_MAX_UPLOAD_MB = 32.0


def api_max_upload_bytes() -> int:
    """Largest request body the REST API accepts for an inspection (413 above it).

    ``STUDIO_API_MAX_UPLOAD_MB`` overrides the default of 32 MB (at most 64, the image reader's own limit).
    """
    raw = os.environ.get("STUDIO_API_MAX_UPLOAD_MB", "").strip()
    megabytes = float(raw) if raw else DEFAULT_API_MAX_UPLOAD_MB
    if not 0 < megabytes <= 64:
        raise ValueError("STUDIO_API_MAX_UPLOAD_MB must be more than 0 and at most 64")
    return int(megabytes * 2**20)


RUNTIMES = ("onnx", "torch")
DEFAULT_RUNTIME = "torch"


@functools.cache
def inference_runtime() -> str:
    """What runs the models when the engine inspects: ``onnx`` (onnxruntime on each model's exported graph,
    ``models/onnx_runtime.py``) or ``torch``; ``STUDIO_RUNTIME``, read once per process. Training always
    uses PyTorch."""
    runtime = os.environ.get("STUDIO_RUNTIME", "").strip().lower() or DEFAULT_RUNTIME
    if runtime not in RUNTIMES:
        raise ValueError(f"STUDIO_RUNTIME must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    return runtime
