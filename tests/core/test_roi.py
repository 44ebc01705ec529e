"""Regions of interest: validation, pixel bounds and cropping; the RTC configuration."""

from __future__ import annotations

import numpy as np
import pytest

from core.config import rtc_configuration
from core.errors import InvalidInputError
from core.roi import crop_to_roi, roi_pixels, validate_roi


def test_validate_clamps_to_the_frame_and_keeps_order() -> None:
    assert validate_roi([-0.2, 0.1, 0.5, 1.4]) == [0.0, 0.1, 0.5, 1.0]
    assert validate_roi(None) is None


@pytest.mark.parametrize("roi", [[0.5, 0.5, 0.5, 0.9], [0.6, 0.1, 0.2, 0.9], [0.1, 0.2, 0.3]])
def test_validate_refuses_empty_inverted_or_malformed(roi: list[float]) -> None:
    with pytest.raises(InvalidInputError):
        validate_roi(roi)


def test_crop_takes_exactly_the_fractional_rectangle() -> None:
    frame = np.arange(480 * 640 * 3, dtype=np.uint32).reshape(480, 640, 3)
    crop = crop_to_roi(frame, [0.25, 0.5, 0.75, 1.0])
    assert crop.shape == (240, 320, 3)
    assert crop[0, 0, 0] == frame[240, 160, 0]
    assert crop_to_roi(frame, None).shape == frame.shape
    assert roi_pixels([0.0, 0.0, 0.001, 0.001], 640, 480) == (0, 0, 1, 1)


def test_rtc_configuration_defaults_to_no_ice_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STUDIO_ICE_SERVERS", raising=False)
    assert rtc_configuration() == {"iceServers": []}
    monkeypatch.setenv("STUDIO_ICE_SERVERS", '[{"urls": ["stun:10.0.0.1:3478"]}]')
    assert rtc_configuration()["iceServers"][0]["urls"] == ["stun:10.0.0.1:3478"]
    monkeypatch.setenv("STUDIO_ICE_SERVERS", '{"urls": 1}')
    with pytest.raises(ValueError):
        rtc_configuration()
