"""Who the tests act as: one actor per role, so that a test says with which rights it acts."""

from core.audit import Actor
from core.auth.roles import Role

ADMIN = Actor("admin", "test", Role.ADMIN, "page")
ENGINEER = Actor("engineer", "test", Role.ENGINEER, "page")
OPERATOR = Actor("operator", "test", Role.OPERATOR, "page")
VIEWER = Actor("viewer", "test", Role.VIEWER, "page")
BY_ROLE = {Role.ADMIN: ADMIN, Role.ENGINEER: ENGINEER, Role.OPERATOR: OPERATOR, Role.VIEWER: VIEWER}
