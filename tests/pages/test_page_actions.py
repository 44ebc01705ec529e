"""Role x state-changing action through the pages (AppTest): on a page every account may open (Models),
an action the role's permission allows goes through, and one it does not is refused by the service on
the page (the error says why) and audited ("denied", via "page"). Driven by ``core/auth/roles.py``;
pages only hide what the services refuse anyway (opening a forbidden page by its URL:
``test_auth_pages.py``)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.audit import audit_log
from core.auth.roles import PAGE_PERMISSIONS, Permission, Role, allows
from core.studio import Studio
from pages.identity import ACCOUNT_KEY
from tests.pages.conftest import PASSWORD as SIGNING_PASSWORD
from tests.pages.conftest import SIGNATURE_KEYS, account
from tests.pages.test_pages import APP, TOOL, texts, trained_studio, trained_template  # noqa: F401 - fixtures

ACTIONS = [("save-review-settings", Permission.CHANGE_SETTINGS), ("bundle-export", Permission.EXPORT_TOOLS)]
pytestmark = pytest.mark.signed_in_as(None)  # each test signs in with its role


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("key", "permission"), ACTIONS, ids=[k for k, _ in ACTIONS])
def test_role_x_action_on_the_models_page(trained_studio: Studio, role: Role, key: str,
                                          permission: Permission) -> None:
    assert PAGE_PERMISSIONS["models"] is None  # every role opens the page; the services decide
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state[ACCOUNT_KEY] = account(role)
    for field in SIGNATURE_KEYS:
        at.session_state[field] = SIGNING_PASSWORD
    at.run()
    at.switch_page("pages/models.py").run()
    assert not at.exception, [e.value for e in at.exception]
    if key == "save-review-settings":
        next(s for s in at.slider if s.label.startswith("Share of passes")).set_value(0.05)  # a real change
    at.button(key=key).click().run()
    assert not at.exception, [e.value for e in at.exception]
    denied = [(e.actor, e.details["permission"], e.details["via"]) for e in audit_log(trained_studio)
              if e.action == "denied"]
    refusals = [e for e in texts(at.error) if "may not" in e]
    if allows(role, permission):
        assert denied == [] and refusals == []
    else:
        assert denied == [(str(role), str(permission), "page")]
        assert refusals and "Nothing was changed" in refusals[0]
