"""The one place that picks the torch device models compute on.

``STUDIO_DEVICE`` (``cpu``, ``cuda`` or ``cuda:N``) when set, else the first CUDA GPU when there is
one, else the CPU (the tested default). Backbones and fitted models' tensors live there; images
enter as CPU tensors and results leave as CPU tensors or NumPy arrays, and fitting's bookkeeping
(cross-validation, calibration) stays on the CPU.
"""

from __future__ import annotations

import os
import re

import torch

ENV = "STUDIO_DEVICE"


def get_device() -> torch.device:
    """The device named by ``STUDIO_DEVICE``, else CUDA when available, else the CPU."""
    name = os.environ.get(ENV, "").strip().lower()
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise ValueError(f"{ENV}={name!r} is not a device; use cpu, cuda or cuda:N")
    if name.startswith("cuda"):
        index = int(name.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise ValueError(f"{ENV}={name!r} but this machine has no such GPU")
    return torch.device(name)
