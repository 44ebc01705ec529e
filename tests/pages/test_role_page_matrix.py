"""Every role x every state-changing control of every page, through AppTest, on ONE studio per module.

For each page and each role (expectations derived from ``core.auth.roles``, so this cannot drift from
the matrix):

- the role may not open the page (``PAGE_PERMISSIONS``): the router refuses it before any control is
  drawn (none of the page's controls is shown); opening it by its URL is refused and audited in
  ``test_auth_pages.py``, and every service behind the controls refuses the role in
  ``tests/core/auth/test_matrix.py``;
- the role may open the page: each control is pressed in turn as that account. When ``PERMISSIONS``
  allows the control's permission, its effect shows in the studio (settings, samples, versions,
  inspections, accounts, ...) and nothing is denied; when it does not, the page either hides the
  control (then the service refuses it: ``test_matrix.py``) or shows it, and pressing it changes nothing,
  writes exactly one audit row ``denied`` naming the account and the permission, and says why.

One trained studio (SQLite, the 40 committed ELPV cells, an active model and a candidate) serves every
test of the module; the tests run in order (roles from viewer to admin on each page) and each control
leaves the studio ready for the next one.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from core.api.tokens import list_tokens
from core.audit import SYSTEM, audit_log
from core.auth.accounts import list_users
from core.auth.roles import PAGE_PERMISSIONS, PERMISSIONS, Permission, Role, allows
from core.bundle.export import export_bundle
from core.config import Settings, load_settings
from core.dataset import set_split, stats
from core.inspect.decision import Verdict
from core.line.outbox import ensure_station
from core.line.outputs import list_outputs
from core.line.recipes import list_recipes
from core.model_versions import list_versions, train_candidate
from core.samples import import_path, recent_samples
from core.studio import Studio, open_studio
from core.tools import create_tool, get_tool, list_tools
from core.training import train
from pages.bundle_panel import PREPARED
from pages.identity import ACCOUNT_KEY
from storage.tables import Inspection
from tests.inspections import record
from tests.pages.conftest import PASSWORD, SIGNATURE_KEYS, account

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
ELPV = ROOT / "tests" / "data" / "elpv"
DEFECTIVE = sorted((ELPV / "defective").glob("*.png"))
TOOL = "solar-cell"
STATION = "line1"
REFUSED = "This page is not open to your account"
BUNDLE: list[bytes] = []  # the tool's bundle, exported by the fixture, for the import control
ROLES = list(Role)  # viewer first: a denied press must find the studio as the fixture left it
pytestmark = pytest.mark.signed_in_as(None)  # each test signs in as its role


@dataclass(frozen=True)
class Control:
    """A state-changing control: where it is, what it needs, how to press it, what it changes."""

    name: str
    page: str  # url path, a key of PAGE_PERMISSIONS
    permission: Permission
    button: str | None  # the button's key or label (its start); None: the upload itself is the action
    effect: Callable[[Studio, AppTest], object]  # a snapshot of what the action changes
    prepare: Callable[[AppTest, Role], object] | None = None  # set the control's inputs
    tab: str | None = None  # the page's stateful tab the control lives in
    hidden_when_denied: bool = False  # the page hides the control from roles without the permission


# -- what the actions change (a snapshot, compared before and after the press) -----------------------

def tool_settings(studio: Studio, at: AppTest) -> object:
    return get_tool(studio, TOOL).settings


def samples(studio: Studio, at: AppTest) -> object:
    return stats(studio, TOOL)


def versions(studio: Studio, at: AppTest) -> object:
    return [(v.id, v.status) for v in list_versions(studio, TOOL)]


def inspections(studio: Studio, at: AppTest) -> object:
    with studio.transaction() as session:
        return (session.scalar(select(func.count()).select_from(Inspection)),
                session.scalar(select(func.count()).select_from(Inspection).where(Inspection.needs_review)))


def audited(action: str) -> Callable[[Studio, AppTest], object]:
    return lambda studio, at: len(audit_log(studio, limit=None, action=action))


def tools(studio: Studio, at: AppTest) -> object:
    return [t.name for t in list_tools(studio)]


def accounts(studio: Studio, at: AppTest) -> object:
    return [(u.username, u.role, u.disabled, u.must_change_password) for u in list_users(studio, SYSTEM)]


def line(studio: Studio, at: AppTest) -> object:
    return ([o.name for o in list_outputs(studio, STATION)],
            [(r.name, r.active) for r in list_recipes(studio, STATION)])


def tokens(studio: Studio, at: AppTest) -> object:
    return [(t.name, t.revoked_at is None) for t in list_tokens(studio)]


def bundle_prepared(studio: Studio, at: AppTest) -> object:
    return PREPARED in at.session_state and at.session_state[PREPARED] is not None


# -- the inputs each control needs ---------------------------------------------------------------------

SHARE = {Role.VIEWER: 0.02, Role.OPERATOR: 0.03, Role.ENGINEER: 0.04, Role.ADMIN: 0.05}  # a real change each
SMOOTHING = {Role.VIEWER: 2, Role.OPERATOR: 3, Role.ENGINEER: 4, Role.ADMIN: 5}


def button(at: AppTest, key_or_label: str):  # noqa: ANN201 - a Button, or None when not shown
    return next((b for b in at.button if b.key == key_or_label or b.label.startswith(key_or_label)), None)


def pick(at: AppTest, split: str | None = None) -> None:
    """Tick the first sample of the dataset grid (of ``split`` only, or of any)."""
    at.multiselect(key="filter-splits").set_value([split] if split else []).run()
    next(c for c in at.checkbox if str(c.key).startswith("pick-")).check()


def other_label(at: AppTest, role: Role) -> None:
    pick(at)
    box = next(c for c in at.checkbox if str(c.key).startswith("pick-") and c.value)
    at.selectbox(key="dataset-relabel-to").set_value("good" if box.label.split()[1] == "defective" else "defective")


def review_share(at: AppTest, role: Role) -> None:
    next(s for s in at.slider if s.label.startswith("Share of passes")).set_value(SHARE[role])


def flip_augment(at: AppTest, role: Role) -> None:
    toggle = at.toggle(key="robust-augment")
    toggle.set_value(not toggle.value)


def tool_name(at: AppTest, role: Role) -> None:
    next(t for t in at.sidebar.text_input if t.label == "Name").input(f"zz-{role}")


def threshold(at: AppTest, role: Role) -> None:
    next(s for s in at.slider if s.label.startswith("Decision threshold")).set_value(0.4 + SHARE[role])


def shifts(at: AppTest, role: Role) -> None:
    at.text_input(key="analytics-shifts-text").input(f"early 6-14, late 14-22, night 22-{SMOOTHING[role] + 1}")


def image(at: AppTest, role: Role) -> None:
    picture = Image.open(DEFECTIVE[0]).convert("RGB")
    picture.putpixel((0, 0), (ROLES.index(role) * 40, 0, 0))  # a new image for each role (not a duplicate)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    at.file_uploader[0].set_value([(f"{role}.png", buffer.getvalue(), "image/png")])


def photo(at: AppTest, role: Role) -> None:
    at.file_uploader[0].set_value((DEFECTIVE[1].name, DEFECTIVE[1].read_bytes(), "image/png")).run()


def smoothing(at: AppTest, role: Role) -> None:
    at.slider(key="live-smoothing").set_value(SMOOTHING[role])


def region(at: AppTest, role: Role) -> None:
    at.slider(key=f"roi-x-{TOOL}").set_value((SHARE[role], 0.9))


def output(at: AppTest, role: Role) -> None:
    inputs = {t.label: t for t in at.main.text_input}
    inputs["Name"].input(f"hook-{role}")
    next(r for r in at.radio if r.label == "Kind").set_value("webhook")
    inputs["URL"].input("http://127.0.0.1:9/hook")


def recipe(at: AppTest, role: Role) -> None:
    next(t for t in at.text_input if t.label == "Product name").input(f"bracket-{role}")
    next(m for m in at.multiselect if m.label == "Tools").set_value([TOOL])


def new_user(at: AppTest, role: Role) -> None:
    at.text_input(key="user-name").input(f"new-{role}")
    at.text_input(key="user-full-name").input("New Person")
    at.text_input(key="user-password").input("a long initial password")


def chosen_user(at: AppTest, role: Role) -> None:
    at.selectbox(key="user-chosen").set_value(f"new-{role}").run()


def viewer_role(at: AppTest, role: Role) -> None:
    chosen_user(at, role)
    at.selectbox(key="user-new-role").set_value(Role.VIEWER)


def bundle(at: AppTest, role: Role) -> None:
    at.file_uploader(key="bundle-upload").set_value(("solar-cell.zip", BUNDLE[0], "application/zip")).run()
    at.text_input(key="bundle-as").input(f"zz-import-{role}")


def token_name(at: AppTest, role: Role) -> None:
    at.text_input(key="token-name").input(f"mes-{role}")


P, D = Permission, "dataset"  # short names for the table below
CONTROLS = [
    # Models (every account opens it; the services decide). Promote, delete, retrain in this order: the
    # engineer promotes the fixture's candidate, deletes the old model and trains a new candidate, which
    # the admin then promotes, and so on.
    Control("promote", "models", P.PROMOTE, "promote", versions),
    Control("delete-version", "models", P.PROMOTE, "delete", versions),
    Control("retrain", "models", P.TRAIN, "Retrain into a candidate", versions),
    Control("review-settings", "models", P.CHANGE_SETTINGS, "save-review-settings", tool_settings, review_share),
    Control("robustness", "models", P.CHANGE_SETTINGS, "save-robustness", tool_settings, flip_augment),
    Control("queue-suggestions", "models", P.REVIEW, "queue-suggestions", inspections),
    Control("bundle-export", "models", P.EXPORT_TOOLS, "bundle-export", bundle_prepared),
    Control("bundle-import", "models", P.IMPORT_TOOLS, "bundle-import", tools, bundle),
    Control("new-tool", "models", P.MANAGE_TOOLS, "Create tool", tools, tool_name, hidden_when_denied=True),
    Control("relabel", D, P.EDIT_DATASET, "Relabel", samples, other_label),
    Control("held-out", D, P.EDIT_DATASET, "Held-out", samples, lambda at, role: pick(at, "train")),
    Control("training", D, P.EDIT_DATASET, "Training", samples, lambda at, role: pick(at, "held_out")),
    Control("delete-samples", D, P.DELETE_SAMPLES, "Delete", samples, lambda at, role: pick(at)),
    Control("threshold", "train", P.CHANGE_SETTINGS, "Use this threshold", tool_settings, threshold),
    Control("save-shifts", "analytics", P.CHANGE_SETTINGS, "Save shifts", tool_settings, shifts),
    Control("upload", "capture", P.CAPTURE, "Add to dataset", samples, image),
    Control("save-live-settings", "live", P.CHANGE_SETTINGS, "live-save", tool_settings, smoothing),
    Control("photo-inspection", "live", P.INSPECT, None, inspections, photo, tab="Photo"),
    Control("save-roi", "live", P.EDIT_ROI, "roi-save", audited("roi"), region, tab="Region of interest"),
    Control("verdict", "review", P.REVIEW, "verdict-defective", audited("verdict")),
    Control("undo", "review", P.REVIEW, "undo", audited("undo")),
    Control("skip", "review", P.REVIEW, "skip", audited("skip")),
    Control("add-output", "line", P.MANAGE_OUTPUTS, "Add output", line, output),
    Control("remove-output", "line", P.MANAGE_OUTPUTS, "Remove", line),
    Control("create-recipe", "line", P.EDIT_RECIPES, "Create recipe", line, recipe),
    Control("activate-recipe", "line", P.SWITCH_RECIPE, "Activate recipe", line),
    Control("create-token", "api-tokens", P.MANAGE_TOKENS, "Create token", tokens, token_name),
    Control("revoke-token", "api-tokens", P.MANAGE_TOKENS, "revoke", tokens),
    Control("add-user", "admin", P.MANAGE_USERS, "Add user", accounts, new_user),
    Control("set-role", "admin", P.MANAGE_USERS, "user-set-role", accounts, viewer_role),
    Control("disable-user", "admin", P.MANAGE_USERS, "user-disable", accounts, chosen_user),
    Control("enable-user", "admin", P.MANAGE_USERS, "user-enable", accounts, chosen_user),
    Control("reset-password", "admin", P.MANAGE_USERS, "user-reset", audited("user_reset_password"),
            chosen_user),
]
PAGE_FILES = {"capture": "capture", "dataset": "dataset", "train": "train", "live": "live", "review": "review",
              "analytics": "analytics", "models": "models", "line": "line", "fleet": "fleet",
              "api-tokens": "api_tokens", "admin": "users"}
PAGES = list(dict.fromkeys(c.page for c in CONTROLS))


@pytest.fixture(scope="module")
def matrix_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    """One studio for the module: tool ``solar-cell`` with the 40 ELPV cells, an active model and a
    candidate, failed inspections with kept images (suggestions) and flagged ones (the review queue),
    a line station; the app points at it."""
    data_dir = tmp_path_factory.mktemp("matrix") / "data"
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    import_path(studio, TOOL, ELPV, actor=SYSTEM)
    train(studio, TOOL, actor=SYSTEM)
    train_candidate(studio, TOOL, SYSTEM)
    cell = DEFECTIVE[2].read_bytes()
    for _ in range(3 * 10):  # one page of suggestions for each role that may queue them
        record(studio, TOOL, Verdict("fail", "defective", 0.9), {"good": 0.1, "defective": 0.9}, image=cell)
    for _ in range(6):  # cards for the review page
        record(studio, TOOL, Verdict("review", "defective", 0.55), {"good": 0.45, "defective": 0.55}, image=cell)
    with studio.transaction() as session:
        ensure_station(session, STATION)
    set_split(studio, TOOL, [s.id for s in recent_samples(studio, TOOL, 1)], "held_out", SYSTEM)  # one at least
    BUNDLE[:] = [export_bundle(studio, TOOL, data_dir.parent / "bundle.zip", actor=SYSTEM).path.read_bytes()]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STUDIO_DATA_DIR", str(data_dir))
        patch.delenv("DATABASE_URL", raising=False)
        assert load_settings().data_dir == data_dir
        yield studio
    studio.engine.dispose()


def open_as(role: Role, page: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state[ACCOUNT_KEY] = account(role)
    for key in SIGNATURE_KEYS:
        at.session_state[key] = PASSWORD
    at.run()
    at.switch_page(f"pages/{PAGE_FILES[page]}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_controls_cover_every_permission() -> None:
    """Every permission has a control here, but MANAGE_LINE: it opens the Line page (whose other control,
    trigger by hand, needs a running station: tests/line)."""
    assert set(Permission) - {c.permission for c in CONTROLS} == {Permission.MANAGE_LINE}
    assert PAGE_PERMISSIONS["line"] == Permission.MANAGE_LINE
    assert set(PAGES) <= set(PAGE_PERMISSIONS)


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("role", ROLES, ids=str)
def test_role_x_control(matrix_studio: Studio, page: str, role: Role) -> None:
    controls = [c for c in CONTROLS if c.page == page]
    at = open_as(role, page)
    needed = PAGE_PERMISSIONS[page]
    if needed is not None and needed not in PERMISSIONS[role]:
        # refused by the router before the page runs (and audited: test_auth_pages.py); the services
        # refuse every one of these controls' actions to this role: tests/core/auth/test_matrix.py
        assert any(REFUSED in e.value for e in at.error)
        assert all(button(at, c.button) is None for c in controls if c.button)
        return
    for control in controls:
        if control.tab is not None:
            at.session_state["tab"] = control.tab
            at.run()
        if control.hidden_when_denied and not allows(role, control.permission):
            assert button(at, control.button) is None, control.name  # the service refuses it: test_matrix.py
            continue
        before = control.effect(matrix_studio, at)
        last = max((e.id for e in audit_log(matrix_studio, limit=1)), default=0)
        if control.prepare is not None:
            control.prepare(at, role)
        if control.button is not None:
            pressed = button(at, control.button)
            assert pressed is not None, (control.name, [b.label for b in at.button])
            pressed.click().run()
        assert not at.exception, (control.name, [e.value for e in at.exception])
        denied = [(e.actor, e.details["permission"], e.details["via"])
                  for e in audit_log(matrix_studio, limit=None) if e.id > last and e.action == "denied"]
        after = control.effect(matrix_studio, at)
        if allows(role, control.permission):
            assert denied == [], control.name
            assert after != before, (f"{control.name}: no effect for {role}", texts(at))
        else:
            assert denied == [(str(role), str(control.permission), "page")], control.name
            assert after == before, f"{control.name}: {role} changed something"
            assert any("may not" in str(m.value) for m in (*at.error, *at.toast)), (control.name, texts(at))


def texts(at: AppTest) -> list[str]:
    return [str(m.value) for m in (*at.error, *at.warning, *at.toast)]
