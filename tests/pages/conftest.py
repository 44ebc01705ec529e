"""Page tests: AppTest cannot run the WebRTC component, so ``webrtc_streamer`` is replaced by a
recorder that keeps its arguments (the tests then call the page's real ``video_frame_callback``
with real frames, as the component's worker thread would)."""

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
        return SimpleNamespace(state=SimpleNamespace(playing=self.playing, signalling=False))


@pytest.fixture(autouse=True)
def webrtc(monkeypatch: pytest.MonkeyPatch) -> StreamerRecorder:
    recorder = StreamerRecorder()
    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", recorder)
    return recorder
