"""One backbone pass per crop (``models.backbones.shared_pass``): inside ``shared_passes()`` a second request
for an equal input reuses the first pass's stage outputs bit for bit, continues it for deeper stages, and a
different input gets its own pass; outside the block every call computes."""

from __future__ import annotations

import torch

from models.backbones.registry import get_backbone
from models.backbones.shared_pass import shared_passes

NAME = "efficientnet-lite0"


class StemCalls:
    """Counts the backbone's stem convolutions (one per pass)."""

    def __init__(self, backbone: torch.nn.Module) -> None:
        self.count = 0
        self.handle = backbone._conv_stem.register_forward_hook(self.hook)

    def hook(self, *_: object) -> None:
        self.count += 1


def test_an_equal_input_reuses_the_pass_and_continues_it() -> None:
    backbone = get_backbone(NAME)
    x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        alone_shallow = backbone.forward_stages(x, upto=2)
        alone_deep = backbone.forward_stages(x)
        calls = StemCalls(backbone)
        try:
            with shared_passes():
                shallow = backbone.forward_stages(x.clone(), upto=2)
                deep = backbone.forward_stages(x.clone())  # continues the first pass
                again = backbone.forward_stages(x.clone(), upto=4)
        finally:
            calls.handle.remove()
    assert calls.count == 1
    assert len(shallow) == 3 and len(deep) == len(alone_deep) == 8 and len(again) == 5
    for a, b in zip(shallow, alone_shallow, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(deep, alone_deep, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(again, alone_deep[:5], strict=True):
        assert torch.equal(a, b)


def test_a_different_input_or_no_block_computes_again() -> None:
    backbone = get_backbone(NAME)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[0, 0, 0, 0] += 0.5
    with torch.inference_mode():
        calls = StemCalls(backbone)
        try:
            with shared_passes():
                first = backbone.forward_stages(x, upto=3)
                other = backbone.forward_stages(y, upto=3)
                twice = backbone.forward_stages(torch.cat([x, x]), upto=3)  # a batch of two: its own pass
            backbone.forward_stages(x, upto=3)
            backbone.forward_stages(x, upto=3)
        finally:
            calls.handle.remove()
    assert calls.count == 5
    assert not torch.equal(first[-1], other[-1])
    assert torch.allclose(twice[-1][0], first[-1][0], atol=1e-4)
