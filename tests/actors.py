"""Who the tests act as: one actor per role, so that a test says with which rights it acts."""

from core.audit import Actor

ADMIN = Actor("admin", "test")
ENGINEER = Actor("engineer", "test")
OPERATOR = Actor("operator", "test")
VIEWER = Actor("viewer", "test")
