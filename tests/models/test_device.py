"""models/device.py: STUDIO_DEVICE, else CUDA when available, else the CPU."""

from __future__ import annotations

import pytest
import torch

from models.device import ENV, get_device


def test_the_cpu_unless_told_or_a_gpu_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")
    monkeypatch.setenv(ENV, " CPU ")
    assert get_device() == torch.device("cpu")


@pytest.mark.parametrize(("value", "message"), [("gpu", "not a device"), ("cuda:x", "not a device"),
                                                ("cuda:99", "no such GPU")])
def test_a_wrong_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    monkeypatch.setenv(ENV, value)
    with pytest.raises(ValueError, match=message):
        get_device()
