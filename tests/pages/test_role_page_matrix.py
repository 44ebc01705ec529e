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
test of the module; the tests run in order (every page for the viewer, then for the operator, ...) and
each control leaves the studio ready for the next one. Camera frames reach the Live and Capture pages
through their own WebRTC callbacks (tests/pages/conftest.py): the Live page's INSPECT records the next frame
(waited for through the inspection writer), the Capture page's burst takes frames from a thread feeding the
callback during the run. Add class works on a small tool of its own, which no later page judges. The Line
page's test publish goes to a real webhook receiver on loopback. The Train page's two training buttons
train for real (a classifier and an anomaly model for each of the two roles that may): the costly part of
the module.

``test_every_page_button_is_pressed_or_excused`` reads every button of pages/*.py: a new one fails it until
it is a control here or excused, with its reason, in ``NOT_PRESSED``.
"""

from __future__ import annotations

import ast
import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from inspect import getclosurevars
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from core.api.tokens import list_tokens
from core.audit import SYSTEM, audit_log
from core.auth.accounts import actor_for, list_users
from core.auth.roles import PAGE_PERMISSIONS, PERMISSIONS, Permission, Role, allows
from core.bundle.export import export_bundle
from core.config import Settings, load_settings
from core.dataset import delete as dataset_delete
from core.dataset import set_split, stats
from core.inspect.decision import Verdict
from core.line.outbox import ensure_station
from core.line.outputs import list_outputs
from core.line.recipes import list_recipes
from core.model_versions import list_versions, train_candidate
from core.operating_point import service as operating_point
from core.operating_point.choose import Targets
from core.reviews import submit_review
from core.samples import import_path, recent_samples
from core.studio import Studio, open_studio
from core.tool_settings import change_settings
from core.tools import create_tool, get_tool, list_tools
from core.training import train
from pages.bundle_panel import PREPARED
from pages.identity import ACCOUNT_KEY
from storage.tables import Inspection
from tests.inspections import record
from tests.pages.conftest import PASSWORD, SIGNATURE_KEYS, StreamerRecorder, account
from tests.pages.test_live_page import frame_of, send

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
ELPV = ROOT / "tests" / "data" / "elpv"
DEFECTIVE = sorted((ELPV / "defective").glob("*.png"))
GOOD = sorted((ELPV / "good").glob("*.png"))
TOOL = "solar-cell"
CLASSES_TOOL = "zz-classes"  # a small tool of its own for the Add class control: no later page judges it
STATION = "line1"
REFUSED = "This page is not open to your account"
BUNDLE: list[bytes] = []  # the tool's bundle, exported by the fixture, for the import control
DELETED: list[int] = []  # samples the fixture soft-deleted, for the Restore and Undo delete controls
SIGNED: list[int] = []  # an inspection whose verdict the fixture signed, for the correction control
CAMERA: list[StreamerRecorder] = []  # the test's stand-in for the WebRTC component, to feed camera frames
RECEIVED: list[bytes] = []  # the bodies the loopback webhook receiver got (the Line page's test publish)
WEBHOOK: list[str] = []  # that receiver's URL
JOB_KEY = "training_job"  # the Train page's session key of its background training
UNDO_KEY = "dataset-undo"  # the Dataset page's session key of the last delete (a page script: not importable)
NEW_CLASS = "+ New class..."  # the Capture page's label choice that opens the Add class form (a page script)
FEEDERS: list[tuple[threading.Event, threading.Thread]] = []  # the camera feeding the Capture page's burst
ROLES = list(Role)  # viewer first: a denied press must find the studio as the fixture left it
pytestmark = pytest.mark.signed_in_as(None)  # each test signs in as its role


@dataclass(frozen=True)
class Control:
    """A state-changing control: where it is, what it needs, how to press it, what it changes."""

    name: str
    page: str  # url path, a key of PAGE_PERMISSIONS
    permission: Permission
    button: str | None  # the button's key or label (its start); None: the input itself is the action (an
    # upload, a setting applied on change)
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


def trained(studio: Studio, at: AppTest) -> object:
    """The versions once the Train page's background training (if one was started) has ended."""
    if JOB_KEY in at.session_state and at.session_state[JOB_KEY] is not None:
        assert at.session_state[JOB_KEY].wait(timeout=900)  # a real training on a shared 2-core machine
        at.run()
    return versions(studio, at)


def published(studio: Studio, at: AppTest) -> object:
    return len(RECEIVED)


def classes(studio: Studio, at: AppTest) -> object:
    return get_tool(studio, CLASSES_TOOL).classes


def burst_samples(studio: Studio, at: AppTest) -> object:
    """The samples once the camera feeding the burst (if one was started) has stopped."""
    for stop, thread in FEEDERS:
        stop.set()
        thread.join()
    FEEDERS.clear()
    return stats(studio, TOOL)


def inspected(studio: Studio, at: AppTest) -> object:
    """The inspections once the Live page's inspection writer has written all it was given; in the
    manual trigger (after INSPECT), a camera frame goes through the page's own video callback first."""
    callback = CAMERA[0].callback(f"live-camera-{TOOL}")
    if at.radio(key="live-trigger").value == "manual":
        send(CAMERA[0], DEFECTIVE[3])
    writer = getclosurevars(callback).nonlocals["worker"].processor.writer
    assert writer.flush(timeout=300)  # a shared 2-core machine
    return inspections(studio, at)


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
    inputs["URL"].input(WEBHOOK[0])


def anomaly_policy(at: AppTest, role: Role) -> None:
    """Back and forth between the two policies that keep the classifier deciding (the later pages' tests)."""
    policy = at.selectbox(key="anomaly-policy")
    policy.set_value("classifier only" if policy.value == "cross-check" else "cross-check").run()


def anomaly_threshold(at: AppTest, role: Role) -> None:
    at.slider(key="anomaly-threshold").set_value(0.3 + SHARE[role]).run()


def camera_frame(at: AppTest, role: Role) -> None:
    """A real frame through the Live page's own camera callback (as the video thread would give it)."""
    send(CAMERA[0], GOOD[ROLES.index(role)])


def snapshot_frame(at: AppTest, role: Role) -> None:
    """A real frame through the Capture page's own camera callback, just before the snapshot."""
    CAMERA[0].callback("capture-camera")(frame_of(GOOD[len(ROLES) + ROLES.index(role)]))


def burst_frames(at: AppTest, role: Role) -> None:
    """Two frames a tenth of a second apart, from a camera that feeds the Capture page's own callback a new
    frame (a new image each: no duplicate) every 50 ms until the effect stops it."""
    at.number_input(key="burst-count").set_value(2)
    at.number_input(key="burst-interval").set_value(0.1).run()
    grabber = CAMERA[0].callback("capture-camera")
    base = np.asarray(frame_of(GOOD[2 * len(ROLES) + ROLES.index(role)]).to_ndarray(format="rgb24"), np.int16)
    stop = threading.Event()

    def feed() -> None:
        step = 0
        while not stop.wait(0.05):
            step += 1
            grabber(av.VideoFrame.from_ndarray(((base + step) % 256).astype(np.uint8), format="rgb24"))

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    FEEDERS.append((stop, thread))


def new_class(at: AppTest, role: Role) -> None:
    """The Capture page of the small tool, its '+ New class...' label and a class name for each role."""
    at.selectbox(key="tool").set_value(CLASSES_TOOL).run()
    at.selectbox(key="capture-label").set_value(NEW_CLASS).run()
    at.text_input(key="new-class-name").input(f"scratch-{ROLES.index(role)}")


def manual_trigger(at: AppTest, role: Role) -> None:
    at.radio(key="live-trigger").set_value("manual").run()


def last_delete(at: AppTest, role: Role) -> None:
    """The Undo delete button undoes this session's last delete; a role that may not delete has none, so
    its session is given one (samples the fixture deleted) to press the button at all."""
    if not (at.session_state[UNDO_KEY] if UNDO_KEY in at.session_state else []):
        at.session_state[UNDO_KEY] = DELETED[:1]
        at.run()


def deleted_sample(at: AppTest, role: Role) -> None:
    at.toggle(key="filter-deleted").set_value(True).run()
    pick(at)


def correction(at: AppTest, role: Role) -> None:
    at.number_input(key="correct-id").set_value(SIGNED[0]).run()
    at.selectbox(key="correct-verdict").set_value("good" if role == Role.ENGINEER else "defective")
    at.text_input(key="correct-reason").input(f"seen again by the {role}")


def operator_pin(at: AppTest, role: Role) -> None:
    at.selectbox(key="user-chosen").set_value(str(Role.OPERATOR)).run()
    at.text_input(key="user-pin").input("2468")


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
    # the fixture applied an operating point: clear it, then apply one again
    Control("operating-point-clear", "models", P.CHANGE_SETTINGS, "op-clear", tool_settings),
    Control("operating-point-apply", "models", P.CHANGE_SETTINGS, "op-apply", tool_settings),
    Control("queue-suggestions", "models", P.REVIEW, "queue-suggestions", inspections),
    Control("bundle-export", "models", P.EXPORT_TOOLS, "bundle-export", bundle_prepared),
    Control("bundle-import", "models", P.IMPORT_TOOLS, "bundle-import", tools, bundle),
    Control("new-tool", "models", P.MANAGE_TOOLS, "Create tool", tools, tool_name, hidden_when_denied=True),
    Control("relabel", D, P.EDIT_DATASET, "Relabel", samples, other_label),
    Control("held-out", D, P.EDIT_DATASET, "Held-out", samples, lambda at, role: pick(at, "train")),
    Control("training", D, P.EDIT_DATASET, "Training", samples, lambda at, role: pick(at, "held_out")),
    Control("delete-samples", D, P.DELETE_SAMPLES, "Delete", samples, lambda at, role: pick(at)),
    Control("undo-delete", D, P.DELETE_SAMPLES, "Undo delete", samples, last_delete),
    Control("restore-samples", D, P.DELETE_SAMPLES, "Restore", samples, deleted_sample),  # leaves Deleted on
    Control("threshold", "train", P.CHANGE_SETTINGS, "Use this threshold", tool_settings, threshold),
    Control("calibrated-threshold", "train", P.CHANGE_SETTINGS, "Back to calibrated", tool_settings),
    Control("train", "train", P.TRAIN, "Train", trained),  # a real training each (the only classifier one here)
    Control("train-anomaly", "train", P.TRAIN, "train-anomaly", versions),  # a real anomaly training each
    # the anomaly section's policy and threshold take effect on change (no button)
    Control("anomaly-policy", "train", P.CHANGE_SETTINGS, None, tool_settings, anomaly_policy),
    Control("anomaly-threshold", "train", P.CHANGE_SETTINGS, None, tool_settings, anomaly_threshold),
    Control("save-shifts", "analytics", P.CHANGE_SETTINGS, "Save shifts", tool_settings, shifts),
    Control("upload", "capture", P.CAPTURE, "Add to dataset", samples, image),
    Control("snapshot", "capture", P.CAPTURE, "snapshot", samples, snapshot_frame),
    Control("burst", "capture", P.CAPTURE, "burst", burst_samples, burst_frames),
    # last of the page: it leaves the session on the small tool
    Control("add-class", "capture", P.EDIT_DATASET, "Add class", classes, new_class),
    Control("save-live-settings", "live", P.CHANGE_SETTINGS, "live-save", tool_settings, smoothing),
    Control("photo-inspection", "live", P.INSPECT, None, inspections, photo, tab="Photo"),
    Control("save-roi", "live", P.EDIT_ROI, "roi-save", audited("roi"), region, tab="Region of interest"),
    Control("clear-roi", "live", P.EDIT_ROI, "roi-clear", audited("roi"), tab="Region of interest"),
    Control("live-capture", "live", P.CAPTURE, "live-capture", samples, camera_frame, tab="Camera"),
    Control("live-inspect", "live", P.INSPECT, "live-inspect", inspected, manual_trigger, tab="Camera"),
    Control("verdict", "review", P.REVIEW, "verdict-defective", audited("verdict")),
    Control("undo", "review", P.REVIEW, "undo", audited("undo")),
    Control("skip", "review", P.REVIEW, "skip", audited("skip")),
    Control("sign-correction", "review", P.REVIEW, "correct", audited("verdict_correction"), correction),
    Control("add-output", "line", P.MANAGE_OUTPUTS, "Add output", line, output),
    Control("test-publish", "line", P.MANAGE_OUTPUTS, "Test publish", published),
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
    Control("set-pin", "admin", P.MANAGE_USERS, "Set PIN", audited("user_set_pin"), operator_pin),
]
# every other button of pages/*.py (by key, or label; an f-string label by its leading text), and why
# this matrix does not press it
NOT_PRESSED = {
    "Sign in": "identity, open to every account: tests/pages/test_auth_pages.py",
    "Switch operator": "identity (an operator's PIN): tests/pages/test_auth_pages.py",
    "Change password": "one's own password, open to every account: tests/pages/test_auth_pages.py",
    "sign-out": "identity: tests/pages/test_auth_pages.py",
    "audit-verify": "reads the audit chain",
    "compare": "reads: compares two versions",
    "evaluate": "reads: evaluates a version on held-out images into the session",
    "Select page": "ticks the grid's boxes in the session",
    "Clear": "unticks the grid's boxes in the session",
    "Prepare export": "writes a download file; the studio is unchanged",
    "Show my skipped cards again": "the session's list of skipped cards",
    "Cancel import": "a session flag that stops an upload's loop",
    "cancel": "cancels the running background training: that it still runs when pressed rests on the training's "
              "speed (no controlled hold without a mock); the page: test_pages.py, the job: "
              "tests/core/test_training.py",
    "cancel-anomaly": "the anomaly training runs inside the page's own script run (no background job): the press "
                      "only reruns the page, which AppTest cannot do while that run lasts",
    "undo-empty": "the callback of 'undo' (pressed here), drawn when the queue is empty",
    "Trigger by hand": "needs a running station (disabled without one): tests/line",
    "extend-anomaly": "drawn only with an active anomaly model and goods added since it (an anomaly training): "
                      "the service in tests/core/test_evaluation.py, its refusal in tests/core/auth/test_matrix.py",
}
PAGE_FILES = {"capture": "capture", "dataset": "dataset", "train": "train", "live": "live", "review": "review",
              "analytics": "analytics", "models": "models", "line": "line", "fleet": "fleet",
              "api-tokens": "api_tokens", "admin": "users"}
PAGES = list(dict.fromkeys(c.page for c in CONTROLS))


class Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint on loopback: keeps each body, answers 200."""

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
        RECEIVED.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def webhook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    WEBHOOK[:] = [f"http://127.0.0.1:{server.server_port}/hook"]
    yield WEBHOOK[0]
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def matrix_studio(tmp_path_factory: pytest.TempPathFactory, webhook: str) -> Iterator[Studio]:
    """One studio for the module: tool ``solar-cell`` with the 40 ELPV cells, an active model and a
    candidate, failed inspections with kept images (suggestions) and flagged ones (the review queue),
    a verdict signed by the engineer, three soft-deleted samples, an operating point, a line station;
    a small untrained tool for the Add class control; the app points at it."""
    data_dir = tmp_path_factory.mktemp("matrix") / "data"
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    create_tool(studio, CLASSES_TOOL, "good,defective", actor=SYSTEM)
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
    held_out = [s.id for s in recent_samples(studio, TOOL, 1)]
    set_split(studio, TOOL, held_out, "held_out", SYSTEM)  # one at least
    BUNDLE[:] = [export_bundle(studio, TOOL, data_dir.parent / "bundle.zip", actor=SYSTEM).path.read_bytes()]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STUDIO_DATA_DIR", str(data_dir))
        patch.delenv("DATABASE_URL", raising=False)
        assert load_settings().data_dir == data_dir
        account(Role.OPERATOR)  # the account whose PIN the admin sets
        signer = actor_for(account(Role.ENGINEER))
        change_settings(studio, TOOL, SYSTEM, {"review.signed": True})
        SIGNED[:] = [record(studio, TOOL, Verdict("fail", "defective", 0.9), {"good": 0.1, "defective": 0.9},
                            image=cell)]
        submit_review(studio, SIGNED[0], "defective", signer, signature_password=PASSWORD)
        change_settings(studio, TOOL, SYSTEM, {"review.signed": False})
        others = [s.id for s in recent_samples(studio, TOOL, 10) if s.id not in held_out]
        DELETED[:] = dataset_delete(studio, TOOL, others[:3], SYSTEM)
        operating_point.apply(studio, TOOL, Targets(0.2), SYSTEM)
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


def page_buttons() -> list[str]:
    """Each ``button`` / ``form_submit_button`` call of pages/*.py by its key, else its label (an f-string's
    leading text and "*"); "" for one with neither (then this matrix cannot name it)."""
    names = []
    for path in sorted((ROOT / "pages").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("button", "form_submit_button")):
                continue
            key = next((k.value for k in node.keywords if k.arg == "key"), None)
            name = key if key is not None else (node.args[0] if node.args else None)
            if isinstance(name, ast.JoinedStr):  # f"verdict-{name}": its constant start
                start = name.values[0]
                names.append(f"{start.value}*" if isinstance(start, ast.Constant) else "")
            else:
                names.append(name.value if isinstance(name, ast.Constant) and isinstance(name.value, str) else "")
    return names


def test_every_page_button_is_pressed_or_excused() -> None:
    """A button added to a page fails here until it is a control of the matrix or excused in NOT_PRESSED."""
    pressed = [c.button for c in CONTROLS if c.button is not None]
    names = page_buttons()
    assert "" not in names, "a page button without a key or constant label: give it a key"
    unlisted = [n for n in names if n not in NOT_PRESSED and n not in pressed
                and not (n.endswith("*") and any(b.startswith(n[:-1]) for b in pressed))]
    assert unlisted == []
    assert set(NOT_PRESSED) <= set(names)  # no stale excuse


def test_the_controls_cover_every_permission() -> None:
    """Every permission has a control here, but MANAGE_LINE: it opens the Line page (whose other control,
    trigger by hand, needs a running station: tests/line)."""
    assert set(Permission) - {c.permission for c in CONTROLS} == {Permission.MANAGE_LINE}
    assert PAGE_PERMISSIONS["line"] == Permission.MANAGE_LINE
    assert set(PAGES) <= set(PAGE_PERMISSIONS)


@pytest.mark.slow  # its studio trains two models; the Train page's cases train four more
@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("role", ROLES, ids=str)
def test_role_x_control(matrix_studio: Studio, webrtc: StreamerRecorder, page: str, role: Role) -> None:
    CAMERA[:] = [webrtc]
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
