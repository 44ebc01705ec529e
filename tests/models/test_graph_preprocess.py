"""The graph's preprocessing gives the same bytes as the estimators' own (OpenCV statistics and lookup
table, PyTorch's uint8 antialiased resize), in PyTorch and once exported, in onnxruntime, at any size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from models.graph_preprocess import network_input_graph
from models.onnx_export import INPUT_NAME
from models.preprocess import standardise_intensity, to_batch

ELPV = Path(__file__).resolve().parents[1] / "data" / "elpv"


def reference(image: np.ndarray, size: int, standardise: bool) -> np.ndarray:
    return to_batch([standardise_intensity(image) if standardise else image], size).contiguous().numpy()


def crops(seed: int) -> list[np.ndarray]:
    """Real cells and noise at random sizes (smaller and larger than the network's), and one of exactly
    the network's size."""
    rng = np.random.default_rng(seed)
    cell = np.asarray(Image.open(sorted((ELPV / "good").glob("*.png"))[0]).convert("RGB"))
    images = [cell, cell[:240, :240].copy()]
    for _ in range(8):
        height, width = (int(v) for v in rng.integers(60, 900, 2))
        noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        images.append(noise if rng.random() < 0.5 else np.asarray(Image.fromarray(cell).resize((width, height))))
    return images


class Preprocess(torch.nn.Module):
    def __init__(self, size: int, standardise: bool) -> None:
        super().__init__()
        self.size, self.standardise = size, standardise

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return network_input_graph(image, self.size, self.standardise)


@pytest.mark.parametrize(("size", "standardise"), [(224, True), (240, True), (260, True), (240, False)])
def test_same_bytes_as_the_estimators_path(size: int, standardise: bool) -> None:
    for image in crops(size):
        graph = network_input_graph(torch.from_numpy(image)[None], size, standardise).numpy()
        assert np.array_equal(graph, reference(image, size, standardise)), image.shape


def test_same_bytes_in_onnxruntime_at_any_size(tmp_path: Path) -> None:
    path = tmp_path / "preprocess.onnx"
    torch.onnx.export(Preprocess(240, True), (torch.zeros(1, 301, 263, 3, dtype=torch.uint8),), str(path),
                      dynamo=False, input_names=[INPUT_NAME], output_names=["batch"],
                      dynamic_axes={INPUT_NAME: {1: "height", 2: "width"}}, opset_version=17)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for image in crops(7):
        (batch,) = session.run(None, {INPUT_NAME: image[None]})
        assert np.array_equal(batch, reference(image, 240, True)), image.shape
