"""One backbone pass per crop: within ``shared_passes()``, a backbone asked again for the stages of an input
equal to the last one it saw (on this thread) reuses the outputs it computed, and continues from them when
deeper stages are asked. A tool whose models share a backbone and preprocessing (the cross-check: a
classifier and an anomaly model) and the tools judging one frame's same region then pay for one pass, not
one each: on a 2-core PC the second core stays free for the camera's video."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

_local = threading.local()


@dataclass
class StagePass:
    """A pass through a backbone's blocks that stops after a stage and can resume: ``x`` is the activation
    after ``blocks_done`` blocks, ``outputs`` the stage outputs so far (then the head's, when ``finished``)."""

    x: torch.Tensor
    blocks_done: int = 0
    outputs: list[torch.Tensor] = field(default_factory=list)
    finished: bool = False


@contextmanager
def shared_passes() -> Iterator[None]:
    """Reuse backbone passes on equal inputs inside this block (this thread only; nested blocks share the
    outermost one's passes, which end with it)."""
    outermost = getattr(_local, "passes", None) is None
    if outermost:
        _local.passes = {}
    try:
        yield
    finally:
        if outermost:
            del _local.passes


def recall(backbone: torch.nn.Module, x: torch.Tensor) -> StagePass | None:
    """The pass ``backbone`` made on an input equal to ``x`` in the current block, if any."""
    passes = getattr(_local, "passes", None)
    if passes is None or id(backbone) not in passes:
        return None
    seen, stage_pass = passes[id(backbone)]
    same = seen.shape == x.shape and seen.dtype == x.dtype and seen.device == x.device and torch.equal(seen, x)
    return stage_pass if same else None


def remember(backbone: torch.nn.Module, x: torch.Tensor, stage_pass: StagePass) -> None:
    """Keep ``stage_pass`` as ``backbone``'s last pass (on input ``x``) when a block is open."""
    passes = getattr(_local, "passes", None)
    if passes is not None:
        passes[id(backbone)] = (x, stage_pass)
