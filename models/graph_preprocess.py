"""The network input of ``models.preprocess`` written with tensor operations only, so that it can live
inside an exported ONNX graph and gives the *same bytes* as the estimators' own path.

``standardise_intensity`` (OpenCV statistics and a lookup table) and the antialiased uint8 resize of
``to_batch`` (PyTorch's separable, fixed-point kernel) are reproduced exactly, rounding included:
per-channel sums are exact integers in float64, the table is built in float32 with the same operation
order, and the resize uses PyTorch's int16 weights and precision, horizontal pass first, each pass
rounded to uint8. ``tests/models/test_graph_preprocess.py`` checks equality on random sizes. Every
size is read from the input as a tensor, so the exported graph accepts any crop size.
"""

from __future__ import annotations

import torch

from models.preprocess import MEAN, STD

TARGET_MEAN = 128.0  # standardise_intensity's defaults
TARGET_STD = 50.0
MAX_PRECISION = 22  # PyTorch's search bound for the int16 weights' precision


def standardise_graph(image: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` uint8 image to its standardised intensities ``(3, H, W)`` int32 (0..255), exactly as
    ``models.preprocess.standardise_intensity``: its lookup table's float32 formula applied to each pixel
    (the same operations on the same float32 values as the table entry the pixel would look up)."""
    pixels = image.double().flatten(1)  # (3, N)
    count = torch._shape_as_tensor(pixels)[1:].double()
    means = pixels.sum(dim=1) / count  # OpenCV's meanStdDev: exact integer sums, then scaled
    stds = (pixels.square().sum(dim=1) / count - means.square()).clamp_min(0.0).sqrt()
    three = torch.full_like(count, 3.0)
    overall = (means[0:1] + means[1:2] + means[2:3]) / three  # numpy's mean of three, in order
    moments = stds.square() + means.square()
    spread = ((moments[0:1] + moments[1:2] + moments[2:3]) / three - overall.square()).clamp_min(0.0).sqrt()
    shift, divisor = overall.float().reshape(1, 1, 1), (spread + 1e-6).float().reshape(1, 1, 1)
    levels = (image.float() - shift) / divisor * TARGET_STD + TARGET_MEAN
    return levels.clamp(0.0, 255.0).floor().int()  # float32 -> uint8 truncates


def _resize_weights(in_size: torch.Tensor, out_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PyTorch's antialiased bilinear weights from ``in_size`` (int64 tensor of one element) to
    ``out_size``: tap indices ``(S, K)`` int64, int16-valued weights ``(S, K)`` int32 and the fixed-point
    unit 2^precision ``(1,)`` int32. Every scalar is a float64 tensor of one element: the ONNX exporter
    would compute a 0-dim tensor divided by a Python number in float32."""
    size = in_size.double().reshape(1)
    one = torch.ones_like(size)
    scale = size / (one * out_size)
    wide = scale >= one
    support = torch.where(wide, scale, one)
    invscale = torch.where(wide, one / scale, one)
    taps = support.float().ceil().long() * 2 + 1
    center = scale * (torch.arange(out_size, dtype=torch.float64) + 0.5)
    first = (center - support + 0.5).floor().clamp_min(0.0)  # all values >= 0 below: floor = truncation
    count = torch.minimum((center + support + 0.5).floor(), size) - first
    k = torch.arange(taps[0], dtype=torch.long).double()
    index = first[:, None] + k[None, :]
    weight = 1.0 - (((index - center[:, None]) + 0.5) * invscale).abs()
    weight = torch.where((k[None, :] < count[:, None]) & (weight > 0.0), weight, torch.zeros_like(weight))
    total = weight.sum(dim=1, keepdim=True)
    weight = torch.where(total != 0.0, weight / total, weight)
    powers = torch.arange(MAX_PRECISION, dtype=torch.float64)
    too_big = (0.5 + weight.max() * torch.pow(2.0, powers + 1.0)).floor() >= 32768.0
    precision = torch.where(too_big.any(), too_big.double().argmax().double(), torch.full_like(scale, MAX_PRECISION))
    unit = torch.pow(2.0, precision)
    return torch.minimum(index, size - 1.0).long(), (0.5 + weight * unit).floor().int(), unit.int()


def _resample_rows(image: torch.Tensor, out_size: int) -> torch.Tensor:
    """One fixed-point pass over the first axis of ``image (N, ...)`` int32 to ``(out_size, ...)``:
    int32 sums (exact), rounded and clamped to uint8 values. Gathering whole rows keeps it quick."""
    index, weight, unit = _resize_weights(torch._shape_as_tensor(image)[0:1], out_size)
    taps = image[index]  # (S, K, ...)
    total = (taps * weight.reshape(*weight.shape, *([1] * (image.dim() - 1)))).sum(dim=1)
    # non-negative sums: truncating division is the floor (and one Div in the graph, where "floor" adds a Mod)
    return torch.div(total + torch.div(unit, 2, rounding_mode="trunc"), unit, rounding_mode="trunc").clamp(0, 255)


def resize_graph(image: torch.Tensor, size: int) -> torch.Tensor:
    """``(C, H, W)`` int32 uint8 values to ``(C, size, size)`` exactly as
    ``F.interpolate(uint8, (size, size), mode="bilinear", antialias=True)`` on the CPU: the width pass
    first, then the height pass (a pass over an axis that has ``size`` pixels already is the identity,
    as PyTorch's skipped pass)."""
    wide = _resample_rows(image.permute(2, 0, 1), size)  # (S, C, H)
    return _resample_rows(wide.permute(2, 1, 0), size).permute(1, 0, 2)  # (S, C, S) -> (C, S, S)


def network_input_graph(image: torch.Tensor, size: int, standardise: bool) -> torch.Tensor:
    """An RGB uint8 crop ``(1, H, W, 3)`` to the backbone's input ``(1, 3, S, S)`` float32 in [-1, 1]:
    ``to_batch([standardise_intensity(crop)], size)`` (without standardisation when not ``standardise``)."""
    pixels = image[0].permute(2, 0, 1)
    pixels = standardise_graph(pixels) if standardise else pixels.int()
    batch = (resize_graph(pixels, size).float() - MEAN) / STD
    return batch.reshape(1, 3, size, size)  # a constant shape: the network after it has fixed sizes
