"""Every role x every state-changing service action, driven by the matrix in ``core/auth/roles.py``.

Each action below is a real call of the service a page, the CLI or the API makes. A role the matrix
refuses gets PermissionDeniedError, nothing is changed, and the refusal is audited ("denied", naming
the permission the service checked: the one this table declares). A role the matrix allows gets past
the check: the call then succeeds, or fails for a reason of its own (an unknown id, no samples), never
for the permission. Inputs are chosen so that allowed calls stay cheap (no training runs).
"""

from __future__ import annotations

import itertools
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core import dataset
from core.api.tokens import create_token, revoke_token
from core.audit import SYSTEM, Actor, audit_log
from core.auth import accounts
from core.auth.roles import PAGE_PERMISSIONS, PERMISSIONS, Permission, Role, allows
from core.bundle.export import export_bundle
from core.bundle.import_ import import_bundle
from core.config import Settings
from core.errors import PermissionDeniedError, StudioError
from core.inspect.service import predict_files, predict_image
from core.line.outputs import add_output, publish_test, remove_output
from core.line.recipes import activate_recipe, create_recipe
from core.live.session import capture_sample
from core.live.tool import LiveConfig, save_live_config
from core.model_versions import delete_version, extend_anomaly, promote, rollback
from core.mvtec import import_mvtec
from core.reviews import as_reviewer, correct_verdict, next_card, queue_for_review, skip, submit_review, undo_review
from core.samples import add_frames, add_images, import_path, import_zip
from core.studio import Studio, open_studio
from core.tool_settings import change_settings
from core.tools import add_class, create_tool, set_classes, set_roi
from core.training import train
from tests.actors import BY_ROLE

TOOL, STATION = "matrix", "line-m"
_unique = itertools.count()


def _name(prefix: str) -> str:
    return f"{prefix}-{next(_unique)}"


def _empty_zip(folder: Path) -> zipfile.ZipFile:
    path = folder / f"{_name('empty')}.zip"
    with zipfile.ZipFile(path, "w"):
        pass
    return zipfile.ZipFile(path)


Action = Callable[[Studio, Actor, Path], Any]
# (name, the permission the service checks, the call)
ACTIONS: list[tuple[str, Permission, Action]] = [
    ("add_images", Permission.CAPTURE, lambda s, a, t: add_images(s, TOOL, [], actor=a)),
    ("add_frames", Permission.CAPTURE, lambda s, a, t: add_frames(s, TOOL, [], "good", actor=a)),
    ("import_path", Permission.CAPTURE, lambda s, a, t: import_path(s, TOOL, t / "missing", actor=a)),
    ("import_zip", Permission.CAPTURE, lambda s, a, t: import_zip(s, TOOL, _empty_zip(t), "e.zip", actor=a)),
    ("import_mvtec", Permission.CAPTURE, lambda s, a, t: import_mvtec(s, TOOL, t / "missing", actor=a)),
    ("capture_sample", Permission.CAPTURE,
     lambda s, a, t: capture_sample(s, TOOL, np.full((16, 16, 3), next(_unique) % 250, np.uint8), None, "good", a)),
    ("predict_image", Permission.INSPECT, lambda s, a, t: predict_image(s, TOOL, "x.png", b"", actor=a)),
    ("predict_files", Permission.INSPECT, lambda s, a, t: predict_files(s, TOOL, [("x.png", b"")], actor=a)),
    ("next_card", Permission.REVIEW, lambda s, a, t: next_card(s, as_reviewer(a), TOOL)),
    ("skip", Permission.REVIEW, lambda s, a, t: skip(s, 999_999, as_reviewer(a))),
    ("submit_review", Permission.REVIEW, lambda s, a, t: submit_review(s, 999_999, "good", a)),
    ("undo_review", Permission.REVIEW, lambda s, a, t: undo_review(s, 999_999, as_reviewer(a))),
    ("correct_verdict", Permission.REVIEW, lambda s, a, t: correct_verdict(s, 999_999, "good", a, "typo")),
    ("queue_for_review", Permission.REVIEW, lambda s, a, t: queue_for_review(s, [999_999], a)),
    ("activate_recipe", Permission.SWITCH_RECIPE, lambda s, a, t: activate_recipe(s, STATION, "base", a)),
    ("train", Permission.TRAIN, lambda s, a, t: train(s, TOOL, actor=a)),
    ("extend_anomaly", Permission.TRAIN, lambda s, a, t: extend_anomaly(s, TOOL, a)),
    ("change_settings", Permission.CHANGE_SETTINGS,
     lambda s, a, t: change_settings(s, TOOL, a, {"audit_share": next(_unique) % 10 / 100})),
    ("save_live_config", Permission.CHANGE_SETTINGS,
     lambda s, a, t: save_live_config(s, TOOL, LiveConfig({}, {}), a)),
    ("set_roi", Permission.EDIT_ROI, lambda s, a, t: set_roi(s, TOOL, [0.1, 0.1, 0.9, 0.9], a)),
    ("create_recipe", Permission.EDIT_RECIPES,
     lambda s, a, t: create_recipe(s, STATION, _name("r"), next(_unique) % 200 + 2, [TOOL], a)),
    ("promote", Permission.PROMOTE, lambda s, a, t: promote(s, TOOL, 999_999, a)),
    ("rollback", Permission.PROMOTE, lambda s, a, t: rollback(s, TOOL, a)),
    ("delete_version", Permission.PROMOTE, lambda s, a, t: delete_version(s, TOOL, 999_999, a)),
    ("relabel", Permission.EDIT_DATASET, lambda s, a, t: dataset.relabel(s, TOOL, [], "good", a)),
    ("set_split", Permission.EDIT_DATASET, lambda s, a, t: dataset.set_split(s, TOOL, [], "held_out", a)),
    ("add_class", Permission.EDIT_DATASET, lambda s, a, t: add_class(s, TOOL, _name("c"), actor=a)),
    ("set_classes", Permission.EDIT_DATASET, lambda s, a, t: set_classes(s, TOOL, "good,defective", a)),
    ("delete_samples", Permission.DELETE_SAMPLES, lambda s, a, t: dataset.delete(s, TOOL, [999_999], a)),
    ("restore_samples", Permission.DELETE_SAMPLES, lambda s, a, t: dataset.restore(s, TOOL, [999_999], a)),
    ("create_tool", Permission.MANAGE_TOOLS, lambda s, a, t: create_tool(s, _name("tool"), "good,bad", actor=a)),
    ("import_bundle", Permission.IMPORT_TOOLS, lambda s, a, t: import_bundle(s, b"not a bundle", a)),
    ("export_bundle", Permission.EXPORT_TOOLS,
     lambda s, a, t: export_bundle(s, TOOL, t / f"{_name('b')}.zip", actor=a)),
    ("create_user", Permission.MANAGE_USERS,
     lambda s, a, t: accounts.create_user(s, a, _name("u"), "long-enough-1", Role.VIEWER)),
    ("list_users", Permission.MANAGE_USERS, lambda s, a, t: accounts.list_users(s, a)),
    ("set_role", Permission.MANAGE_USERS, lambda s, a, t: accounts.set_role(s, a, "nobody", Role.VIEWER)),
    ("disable_user", Permission.MANAGE_USERS, lambda s, a, t: accounts.disable(s, a, "nobody")),
    ("enable_user", Permission.MANAGE_USERS, lambda s, a, t: accounts.enable(s, a, "nobody")),
    ("reset_password", Permission.MANAGE_USERS, lambda s, a, t: accounts.reset_password(s, a, "nobody")),
    ("set_pin", Permission.MANAGE_USERS, lambda s, a, t: accounts.set_pin(s, a, "nobody", "4321")),
    ("add_output", Permission.MANAGE_OUTPUTS,
     lambda s, a, t: add_output(s, STATION, _name("o"), "webhook", "http://127.0.0.1:9/hook", actor=a)),
    ("remove_output", Permission.MANAGE_OUTPUTS, lambda s, a, t: remove_output(s, STATION, "nope", a)),
    ("publish_test", Permission.MANAGE_OUTPUTS, lambda s, a, t: publish_test(s, STATION, "nope", actor=a)),
    ("create_token", Permission.MANAGE_TOKENS, lambda s, a, t: create_token(s, _name("token"), "read", a)),
    ("revoke_token", Permission.MANAGE_TOKENS, lambda s, a, t: revoke_token(s, 999_999, a)),
]
PAGE_ONLY = {Permission.MANAGE_LINE}  # guards the Line page (tests/pages/test_auth_pages.py), no service of its own


@pytest.fixture(scope="module")
def matrix_studio(tmp_path_factory: pytest.TempPathFactory) -> Studio:
    """One studio for the whole matrix: an untrained tool and a station with one recipe."""
    folder = tmp_path_factory.mktemp("matrix") / "data"
    studio = open_studio(Settings(folder, f"sqlite:///{folder / 'studio.db'}"))
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    create_recipe(studio, STATION, "base", 1, [TOOL], SYSTEM)
    return studio


def test_every_permission_has_an_action_here() -> None:
    assert {p for _, p, _ in ACTIONS} == set(Permission) - PAGE_ONLY
    assert PAGE_ONLY <= {p for p in PAGE_PERMISSIONS.values() if p is not None}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("name", "permission", "action"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_role_x_action(matrix_studio: Studio, tmp_path: Path, role: Role, name: str, permission: Permission,
                       action: Action) -> None:
    actor = BY_ROLE[role]
    before = len(audit_log(matrix_studio, limit=None))
    if allows(role, permission):
        try:
            action(matrix_studio, actor, tmp_path)
        except PermissionDeniedError as error:  # pragma: no cover - the failure message
            pytest.fail(f"{role} may {permission} but {name} was refused: {error}")
        except StudioError:
            pass  # past the check: refused for a reason of its own (unknown id, nothing to train on, ...)
        new = audit_log(matrix_studio, limit=None)[: len(audit_log(matrix_studio, limit=None)) - before]
        assert not [e for e in new if e.action == "denied"]
        return
    with pytest.raises(PermissionDeniedError, match="Nothing was changed"):
        action(matrix_studio, actor, tmp_path)
    new = audit_log(matrix_studio, limit=None)[: len(audit_log(matrix_studio, limit=None)) - before]
    assert [(e.action, e.actor, e.details["permission"], e.details["role"], e.details["via"]) for e in new] == \
        [("denied", actor.name, str(permission), str(role), "page")]


def test_the_matrix_is_monotonic_and_viewers_change_nothing() -> None:
    assert PERMISSIONS[Role.VIEWER] == frozenset()
    for lower, higher in itertools.pairwise(list(Role)):
        assert PERMISSIONS[lower] < PERMISSIONS[higher]
