"""Page tests run without a browser: the WebRTC component cannot run under AppTest (GUIDE section 5),
so ``streamlit_webrtc.webrtc_streamer`` is replaced by a recorder of its arguments. Tests feed real
frames through the recorded ``video_frame_callback`` exactly as the video thread would."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import streamlit_webrtc


@dataclass
class CameraWidgets:
    """The arguments of every ``webrtc_streamer`` call of a test, newest last."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def callback(self, key: str) -> Any:
        return [c for c in self.calls if c["key"] == key][-1]["video_frame_callback"]


@dataclass
class _Context:
    state: Any = None
    video_processor: Any = None


@pytest.fixture(autouse=True)
def camera_widgets(monkeypatch: pytest.MonkeyPatch) -> Iterator[CameraWidgets]:
    widgets = CameraWidgets()

    def webrtc_streamer(**kwargs: Any) -> _Context:
        widgets.calls.append(kwargs)
        return _Context()

    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", webrtc_streamer)
    yield widgets
