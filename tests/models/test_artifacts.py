"""Model artifacts: safetensors + JSON, bit-exact round trips, atomic saves, clear errors, no pickle."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch

from models.artifacts import META_FILE, WEIGHTS_FILE, ArtifactError, load_artifact, save_artifact


def _tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    special = torch.tensor([-0.0, 1e-45, 3.4e38, -3.4e38])  # signed zero, subnormal, near the float32 limits
    return {
        "weight": torch.randn(7, 5, generator=generator),
        "transposed": torch.randn(4, 6, generator=generator).t(),  # not contiguous
        "double": torch.randn(3, generator=generator, dtype=torch.float64),
        "half": torch.randn(8, generator=generator).half(),
        "bfloat": torch.randn(8, generator=generator).bfloat16(),
        "special": special,
        "counts": torch.arange(-5, 6, dtype=torch.int64),
        "pixels": torch.randint(0, 256, (2, 3, 4), generator=generator, dtype=torch.uint8),
        "mask": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }


META = {"kind": "classifier", "params": {"profile": "fast", "C": 0.5, "cv_folds": 5, "seed": 0},
        "classes": ["defective", "good", "éclat"], "validation": {"balanced_accuracy": 0.123456789012345,
                                                                   "confusion": [[3, 1], [0, 4]]},
        "none": None, "flag": True}


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's raw bytes, so -0.0 and subnormals are compared too."""
    return tensor.contiguous().view(-1).view(torch.uint8) if tensor.numel() else tensor.view(torch.uint8)


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    tensors = _tensors()
    save_artifact(tmp_path / "model", tensors, META)
    loaded, meta = load_artifact(tmp_path / "model")
    assert meta == META
    assert set(loaded) == set(tensors)
    for name, original in tensors.items():
        copy = loaded[name]
        assert copy.dtype == original.dtype and copy.shape == original.shape, name
        assert torch.equal(_bits(copy), _bits(original)), name
        assert torch.equal(copy, original), name
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == sorted([WEIGHTS_FILE, META_FILE])
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left behind


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_non_finite_tensors_are_refused_at_load(tmp_path: Path, value: float, dtype: torch.dtype) -> None:
    """A NaN or an infinity in learned state would turn every score into NaN: refused when loaded."""
    save_artifact(tmp_path / "model", {"fine": torch.ones(3), "bad": torch.tensor([0.5, value], dtype=dtype)}, META)
    with pytest.raises(ArtifactError, match="'bad' holds NaN or infinite values"):
        load_artifact(tmp_path / "model")


def test_saved_copy_does_not_share_memory_with_the_model(tmp_path: Path) -> None:
    tensors = {"w": torch.ones(3)}
    save_artifact(tmp_path / "model", tensors, {})
    tensors["w"].add_(1)
    loaded, _ = load_artifact(tmp_path / "model")
    assert torch.equal(loaded["w"], torch.ones(3))


def test_creates_missing_parent_folders(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "tool" / "abc"
    save_artifact(folder, {"w": torch.zeros(1)}, {"a": 1})
    assert load_artifact(folder)[1] == {"a": 1}


@pytest.mark.parametrize("existing_is_empty", [False, True])
def test_saving_into_an_existing_folder_fails_and_leaves_it_intact(tmp_path: Path, existing_is_empty: bool) -> None:
    folder = tmp_path / "model"
    if existing_is_empty:
        folder.mkdir()
    else:
        save_artifact(folder, {"w": torch.zeros(2)}, {"version": 1})
        (folder / "notes.txt").write_text("keep me")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    with pytest.raises(OSError):
        save_artifact(folder, {"w": torch.ones(2)}, {"version": 2})

    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # the temporary folder is cleaned up
    if not existing_is_empty:
        tensors, meta = load_artifact(folder)
        assert meta == {"version": 1} and torch.equal(tensors["w"], torch.zeros(2))


def test_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        save_artifact(tmp_path / "model", {"w": torch.zeros(2)}, {"not json": {1, 2}})
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_or_files_raise_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="missing"):
        load_artifact(tmp_path / "nowhere")
    save_artifact(tmp_path / "model", {"w": torch.zeros(2)}, {})
    (tmp_path / "model" / WEIGHTS_FILE).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_artifact(tmp_path / "model")
    save_artifact(tmp_path / "model2", {"w": torch.zeros(2)}, {})
    (tmp_path / "model2" / META_FILE).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_artifact(tmp_path / "model2")


def _saved(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    save_artifact(folder, {"w": torch.arange(1000, dtype=torch.float32)}, {"a": 1})
    return folder


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b"\x00" * 7, id="shorter-than-header"),
        pytest.param(lambda b: b"garbage, not a safetensors file at all", id="garbage"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: struct.pack("<Q", 10**12) + b[8:], id="header-length-too-large"),
        pytest.param(lambda b: b[:8] + b"[" + b[9:], id="header-not-json"),
    ],
)
def test_corrupt_weights_raise_artifact_error(tmp_path: Path, damage) -> None:
    folder = _saved(tmp_path)
    weights = folder / WEIGHTS_FILE
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(ArtifactError, match="damaged"):
        load_artifact(folder)


@pytest.mark.parametrize("text", ["", "{not json", '{"a": 1', "\x00\x01"])
def test_corrupt_json_raises_artifact_error(tmp_path: Path, text: str) -> None:
    folder = _saved(tmp_path)
    (folder / META_FILE).write_text(text)
    with pytest.raises(ArtifactError, match="damaged"):
        load_artifact(folder)


# --- nothing is unpickled ----------------------------------------------------------------------------
def test_weights_file_is_safetensors_not_a_pickle_or_torch_zip(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    data = (folder / WEIGHTS_FILE).read_bytes()
    assert not data.startswith(b"PK\x03\x04")  # torch.save's zip container
    assert data[0] != 0x80  # pickle protocol >= 2 opcode PROTO
    # safetensors layout: little-endian u64 header length, a JSON header, then the raw bytes
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    assert header["w"]["dtype"] == "F32" and header["w"]["shape"] == [1000]
    start, end = header["w"]["data_offsets"]
    assert end - start == 4000 and len(data) == 8 + header_length + end


def test_loading_never_calls_an_unpickler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _saved(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("something was unpickled")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    tensors, meta = load_artifact(folder)
    assert meta == {"a": 1} and torch.equal(tensors["w"], torch.arange(1000, dtype=torch.float32))


class _Payload:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_or_torch_file_in_place_of_the_weights_is_refused_unexecuted(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    marker = tmp_path / "executed"
    (folder / WEIGHTS_FILE).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ArtifactError):
        load_artifact(folder)
    assert not marker.exists()

    torch.save({"w": torch.zeros(2), "payload": _Payload(marker)}, folder / WEIGHTS_FILE)
    with pytest.raises(ArtifactError):
        load_artifact(folder)
    assert not marker.exists()
