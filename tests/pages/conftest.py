"""Page tests run signed in (``signed_in`` below) and without a browser: the WebRTC component cannot
run under AppTest (GUIDE section 5), so ``streamlit_webrtc.webrtc_streamer`` is replaced by a recorder
of its arguments. Tests feed real frames through the page's recorded ``video_frame_callback`` exactly
as the video thread would."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import streamlit_webrtc
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from core.audit import SYSTEM
from core.auth.accounts import Account, create_user, get_user
from core.auth.roles import Role
from core.config import load_settings
from core.errors import NotFoundError
from core.studio import open_studio
from pages.identity import ACCOUNT_KEY

PASSWORD = "page-tests-password"  # every page-test account's password
# the e-signature fields of the pages (pages/signature.py): a signed-in page test has typed its password
# into each, so that the actions it takes are signed for real (the services check the password)
SIGNATURE_KEYS = ("promote-signature", "review-settings-signature", "anomaly-signature", "live-signature",
                  "threshold-signature", "op-signature", "review-signature", "correct-signature")


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


@pytest.fixture(autouse=True)
def navigation_pages_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep AppTest on ``st.navigation`` (multipage v2) for every run.

    AppTest resets ``PagesManager.uses_pages_directory`` before each run and, because the UI
    folder is called ``pages/``, Streamlit then takes the app for a legacy (v1) multipage app:
    from the second run on it executes ``pages/<page>.py`` alone, skipping ``app.py`` (no sidebar,
    no tool selection). ``streamlit run`` sets the flag to False for good on the first call of
    ``st.navigation``; this does the same for AppTest. It changes nothing in the app or services.
    ``scripts/serve.py`` does the same for the real server (see its docstring).
    """
    original = PagesManager.__init__

    def init(self: PagesManager, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def account(role: Role, username: str | None = None) -> Account:
    """A real account of the app's studio (``STUDIO_DATA_DIR``) with ``role``, named after it unless
    ``username`` is given, as the login page keeps it in the session once signed in."""
    name = username or str(role)
    studio = open_studio(load_settings())
    try:
        try:
            return get_user(studio, name)
        except NotFoundError:
            return create_user(studio, SYSTEM, name, PASSWORD, role, name.capitalize())
    finally:
        studio.engine.dispose()


@pytest.fixture(autouse=True)
def signed_in(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every AppTest of these tests starts signed in: as an admin named "operator" (the name the pages
    used before accounts), as another role with ``@pytest.mark.signed_in_as("viewer")``, or signed out
    with ``@pytest.mark.signed_in_as(None)`` (the login tests)."""
    marker = request.node.get_closest_marker("signed_in_as")
    role = marker.args[0] if marker else Role.ADMIN
    original = AppTest.from_file.__func__

    def from_file(cls: type[AppTest], *args: object, **kwargs: object) -> AppTest:
        at = original(cls, *args, **kwargs)
        if role is not None:  # the test has pointed STUDIO_DATA_DIR at its studio by now
            at.session_state[ACCOUNT_KEY] = account(Role(role), "operator" if marker is None else None)
            for key in SIGNATURE_KEYS:
                at.session_state[key] = PASSWORD
        return at

    monkeypatch.setattr(AppTest, "from_file", classmethod(from_file))
