"""EfficientNet-Lite backbones: strict loading of the shipped weights, stage shapes, and proof
that the weights are the ImageNet-trained ones (not merely tensors of the right shapes).

Measured on 2 CPU cores (torch 2.14), which the thresholds below are based on:

* ImageNet, scikit-learn's ``china.jpg`` (a photo of a Chinese temple): top-1 is a building class
  for all three variants (lite0 "bell cote" 0.32, lite1 "palace" 0.27, lite2 "palace" 0.29); the
  probability mass on building classes is 0.65 / 0.57 / 0.51. A randomly initialised lite0 gives
  a flat softmax (max 0.001).
* The 40 committed ELPV cells, leave-one-out 1-NN on standardised pooled head features of
  pretrained lite0: 0.75 (nearest centroid, cosine: 0.75). Chance is 0.5.

  The same 1-NN on a *randomly initialised* lite0 scores 0.60-0.80 over ten seeds (mean 0.68),
  and a logistic-regression probe 0.63-0.80: on these cells, dark cracks make even random
  convolution features (and plain mean intensity, AUC 0.85) informative. On 300 package cells
  the pretrained probe wins only by ~0.06 (0.79 vs 0.72-0.73). "Pretrained beats random by 0.1"
  is therefore not a property of the data and is not asserted; pretraining is proven on ImageNet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

from models.backbones.efficientnet_lite import VARIANTS, EfficientNetLite, load_pretrained, weights_path
from models.backbones.registry import get_backbone, pooled_features
from models.preprocess import to_batch
from models.profiles import PROFILES

NAMES = sorted(VARIANTS)  # efficientnet-lite0, -lite1, -lite2

# Published EfficientNet stage widths: B0/B1 (width 1.0) and B2 (width 1.1); Lite keeps stem and head.
STAGE_CHANNELS = {
    "efficientnet-lite0": [16, 24, 40, 80, 112, 192, 320],
    "efficientnet-lite1": [16, 24, 40, 80, 112, 192, 320],
    "efficientnet-lite2": [16, 24, 48, 88, 120, 208, 352],
}
BLOCKS = {"efficientnet-lite0": 16, "efficientnet-lite1": 21, "efficientnet-lite2": 21}
STRIDES = [2, 4, 8, 16, 16, 32, 32]  # overall stride of each stage's output

# ImageNet-1k classes of buildings that fit a photo of a Chinese temple
BUILDINGS = {442: "bell cote", 449: "boathouse", 483: "castle", 497: "church", 663: "monastery",
             668: "mosque", 698: "palace", 832: "stupa"}


@pytest.fixture(scope="module", params=NAMES)
def pretrained(request: pytest.FixtureRequest) -> tuple[str, EfficientNetLite]:
    return request.param, load_pretrained(request.param)


def _gray_rgb(path: Path) -> np.ndarray:
    gray = np.asarray(Image.open(path).convert("L"))
    return np.repeat(gray[:, :, None], 3, axis=2)


# --- loading ---------------------------------------------------------------------------------------
def test_weights_ship_inside_installed_packages() -> None:
    for name in NAMES:
        path = weights_path(name)
        assert path.is_file() and path.stat().st_size > 10_000_000, path
        assert "site-packages" in path.parts or "dist-packages" in path.parts
        assert VARIANTS[name].package in path.parts


def test_every_tensor_of_the_file_is_in_the_model(pretrained: tuple[str, EfficientNetLite]) -> None:
    """strict=True matched every key; check the values too, and that the model is in eval mode."""
    name, model = pretrained
    state = torch.load(weights_path(name), map_location="cpu", weights_only=True)
    mine = model.state_dict()
    assert set(mine) == set(state)
    for key, tensor in state.items():
        assert torch.equal(mine[key], tensor), key
    assert not model.training and all(not m.training for m in model.modules())
    # a fresh module with strict loading accepts the file too (no missing or unexpected key)
    fresh = EfficientNetLite(VARIANTS[name])
    result = fresh.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # the BatchNorm statistics really come from training, not from the initialiser (mean 0, var 1)
    assert not torch.allclose(model._bn1.running_var, torch.ones_like(model._bn1.running_var))
    assert model._fc.weight.shape == (1000, 1280)


def test_loading_rejects_a_state_dict_of_another_variant() -> None:
    state = torch.load(weights_path("efficientnet-lite2"), map_location="cpu", weights_only=True)
    with pytest.raises(RuntimeError):
        EfficientNetLite(VARIANTS["efficientnet-lite0"]).load_state_dict(state, strict=True)


# --- shapes ----------------------------------------------------------------------------------------
def test_stage_shapes_for_224_input(pretrained: tuple[str, EfficientNetLite]) -> None:
    name, model = pretrained
    assert len(model._blocks) == BLOCKS[name]
    assert model.stage_channels == STAGE_CHANNELS[name]
    with torch.inference_mode():
        outputs = model.forward_stages(torch.zeros(2, 3, 224, 224))
    shapes = [tuple(o.shape) for o in outputs]
    expected = [(2, c, 224 // s, 224 // s) for c, s in zip(STAGE_CHANNELS[name], STRIDES, strict=True)]
    assert shapes == expected + [(2, 1280, 7, 7)]


def test_same_padding_handles_any_input_size() -> None:
    model = get_backbone("efficientnet-lite0")
    with torch.inference_mode():
        outputs = model.forward_stages(torch.zeros(1, 3, 300, 123))
        early = model.forward_stages(torch.zeros(1, 3, 300, 123), upto=2)
        logits = model(torch.zeros(1, 3, 97, 61))
    # TensorFlow "same": each stride-2 step gives ceil(size / 2)
    heights = [150, 75, 38, 19, 19, 10, 10, 10]
    widths = [62, 31, 16, 8, 8, 4, 4, 4]
    assert [tuple(o.shape[-2:]) for o in outputs] == list(zip(heights, widths, strict=True))
    assert len(early) == 3 and all(torch.equal(a, b) for a, b in zip(early, outputs[:3], strict=True))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def test_the_shared_inference_copy_folds_batch_norm_and_computes_the_same_stages() -> None:
    """get_backbone's copy has no BatchNorm left and gives the file's network's outputs, on an even
    input (symmetric padding inside the convolution) and an odd one (asymmetric padded copy)."""
    reference, folded = load_pretrained("efficientnet-lite0"), get_backbone("efficientnet-lite0")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in reference.modules())
    generator = torch.Generator().manual_seed(0)
    for shape in ((2, 3, 224, 224), (1, 3, 117, 90)):
        x = torch.rand(shape, generator=generator) * 2 - 1
        with torch.inference_mode():
            expected, got = reference.forward_stages(x), folded.forward_stages(x)
        for a, b in zip(expected, got, strict=True):
            assert a.shape == b.shape
            assert float((a - b).abs().max()) <= 1e-4 * float(a.abs().max()), shape


def test_profiles_use_each_variant_at_its_native_resolution() -> None:
    assert {p.backbone for p in PROFILES.values()} == set(NAMES)
    for profile in PROFILES.values():
        assert profile.input_size == VARIANTS[profile.backbone].resolution


# --- the weights are the ImageNet-trained ones ------------------------------------------------------
def test_imagenet_recognises_a_real_photo_of_a_temple(pretrained: tuple[str, EfficientNetLite]) -> None:
    name, model = pretrained
    photo = load_sample_image("china.jpg")  # (427, 640, 3) uint8, ships with scikit-learn
    with torch.inference_mode():
        probabilities = torch.softmax(model(to_batch([photo], VARIANTS[name].resolution)), dim=1)[0]
    top1 = int(probabilities.argmax())
    assert top1 in BUILDINGS, f"{name}: top-1 ImageNet class {top1}, not a building"
    assert float(probabilities[list(BUILDINGS)].sum()) > 0.35


def test_random_initialisation_does_not_recognise_the_photo() -> None:
    """The control of the test above: the same architecture untrained is flat and off-topic."""
    torch.manual_seed(0)
    model = EfficientNetLite(VARIANTS["efficientnet-lite0"]).eval()
    with torch.inference_mode():
        probabilities = torch.softmax(model(to_batch([load_sample_image("china.jpg")], 224)), dim=1)[0]
    assert float(probabilities.max()) < 0.01
    assert float(probabilities[list(BUILDINGS)].sum()) < 0.05


def test_pooled_features_separate_good_from_defective_cells(elpv_subset: Path) -> None:
    """Leave-one-out 1-NN on pooled head features of pretrained lite0 (measured 0.75; chance 0.5)."""
    paths = sorted((elpv_subset / "good").glob("*.png")) + sorted((elpv_subset / "defective").glob("*.png"))
    y = np.array([0] * 20 + [1] * 20)
    assert len(paths) == 40
    features = pooled_features(PROFILES["fast"], [_gray_rgb(p) for p in paths]).numpy()
    assert features.shape == (40, 1280) and np.isfinite(features).all()
    assert (features >= 0).all() and (features <= 6).all()  # mean of ReLU6 activations
    standardised = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-6)
    distances = ((standardised[:, None] - standardised[None]) ** 2).sum(axis=-1)
    np.fill_diagonal(distances, np.inf)
    accuracy = float((y[distances.argmin(axis=1)] == y).mean())
    assert accuracy >= 0.65, accuracy
