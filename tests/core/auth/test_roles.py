"""The permission matrix: ordered roles, the README's table, the guard's refusals (audited)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.audit import SYSTEM, Actor, audit_log
from core.auth import guard
from core.auth.roles import PAGE_PERMISSIONS, PERMISSIONS, Permission, Role, allows, matrix_markdown
from core.errors import PermissionDeniedError
from core.studio import Studio
from tests.actors import ADMIN, BY_ROLE, VIEWER

README = Path(__file__).resolve().parents[3] / "README.md"


def test_each_role_has_every_permission_of_the_roles_below_it() -> None:
    roles = list(Role)
    for lower, higher in zip(roles, roles[1:], strict=False):
        assert PERMISSIONS[lower] < PERMISSIONS[higher]
    assert PERMISSIONS[Role.VIEWER] == frozenset()
    assert PERMISSIONS[Role.ADMIN] == frozenset(Permission)
    assert PERMISSIONS[Role.OPERATOR] == {Permission.CAPTURE, Permission.INSPECT, Permission.REVIEW,
                                          Permission.SWITCH_RECIPE}
    assert not allows(None, Permission.CAPTURE)


def test_the_readme_shows_the_matrix() -> None:
    assert matrix_markdown() in README.read_text()


def test_every_page_permission_is_a_permission() -> None:
    assert all(p is None or p in set(Permission) for p in PAGE_PERMISSIONS.values())


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_require_follows_the_matrix_and_audits_refusals(studio: Studio, role: Role, permission: Permission) -> None:
    actor = BY_ROLE[role]
    if permission in PERMISSIONS[role]:
        guard.require(studio, actor, permission, "tool x")
        assert [r for r in audit_log(studio) if r.action == "denied"] == []
    else:
        with pytest.raises(PermissionDeniedError, match=str(permission).replace("_", " ")):
            guard.require(studio, actor, permission, "tool x")
        [row] = [r for r in audit_log(studio) if r.action == "denied"]
        assert (row.actor, row.target, row.details["permission"], row.details["role"], row.details["via"]) == (
            actor.name, "tool x", str(permission), str(role), "page")


def test_an_actor_without_role_is_refused_and_the_system_is_not(studio: Studio) -> None:
    with pytest.raises(PermissionDeniedError, match="not signed in"):
        guard.require(studio, Actor("someone"), Permission.REVIEW)
    guard.require(studio, SYSTEM, Permission.MANAGE_USERS)


def test_single_user_mode_acts_as_a_local_admin(studio: Studio, monkeypatch: pytest.MonkeyPatch) -> None:
    assert guard.auth_enabled()
    monkeypatch.setenv("STUDIO_AUTH", "off")
    assert not guard.auth_enabled()
    guard.require(studio, VIEWER, Permission.MANAGE_USERS)
    guard.require(studio, Actor("anyone"), Permission.PROMOTE)
    assert guard.effective_role(Actor("anyone")) == ADMIN.role
