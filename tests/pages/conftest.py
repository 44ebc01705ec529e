"""Page tests run without a browser: the WebRTC component cannot run under AppTest (GUIDE section 5),
so ``streamlit_webrtc.webrtc_streamer`` is replaced by a recorder of its arguments. Tests feed real
frames through the page's recorded ``video_frame_callback`` exactly as the video thread would."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import streamlit_webrtc


class StreamerRecorder:
    """Stands in for ``streamlit_webrtc.webrtc_streamer``: records each call's keyword arguments."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.playing = False

    def __call__(self, **kwargs: Any) -> SimpleNamespace:
        self.calls.append(kwargs)
        return SimpleNamespace(state=SimpleNamespace(playing=self.playing, signalling=False), video_processor=None)

    def callback(self, key: str) -> Any:
        """The ``video_frame_callback`` of the newest call with ``key``."""
        return [c for c in self.calls if c["key"] == key][-1]["video_frame_callback"]


@pytest.fixture(autouse=True)
def webrtc(monkeypatch: pytest.MonkeyPatch) -> StreamerRecorder:
    recorder = StreamerRecorder()
    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", recorder)
    return recorder


@pytest.fixture
def camera_widgets(webrtc: StreamerRecorder) -> StreamerRecorder:
    """The same recorder, under the name the capture page's tests use."""
    return webrtc
