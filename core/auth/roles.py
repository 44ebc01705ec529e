"""THE permission matrix: which role may do which state-changing action, in this one place.

Roles are ordered: each role has every permission of the roles below it (viewer < operator <
engineer < admin). The README's permission table is generated from :data:`PERMISSIONS` (a test
checks that they agree).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ENGINEER = "engineer"
    ADMIN = "admin"


class Permission(StrEnum):
    """One member per family of state-changing actions."""

    CAPTURE = "capture"                  # add samples from the camera or uploads
    INSPECT = "inspect"                  # inspect parts (live, API predictions, line station)
    REVIEW = "review"                    # verdicts, undo, claims in the review queue
    SWITCH_RECIPE = "switch_recipe"      # make a line recipe the station's active one
    TRAIN = "train"                      # train, extend, cancel trainings
    CHANGE_SETTINGS = "change_settings"  # thresholds, policy, operating points, shifts, live and tool settings
    EDIT_ROI = "edit_roi"                # a tool's region of interest
    EDIT_RECIPES = "edit_recipes"        # line recipes
    PROMOTE = "promote"                  # promote, roll back, delete model versions
    EDIT_DATASET = "edit_dataset"        # relabel, split, classes
    DELETE_SAMPLES = "delete_samples"    # delete samples
    MANAGE_TOOLS = "manage_tools"        # create, rename, delete tools
    IMPORT_TOOLS = "import_tools"        # import a tool bundle
    EXPORT_TOOLS = "export_tools"        # export a tool bundle
    MANAGE_USERS = "manage_users"        # accounts and roles
    MANAGE_OUTPUTS = "manage_outputs"    # line outputs (PLC, MQTT, webhooks)
    MANAGE_TOKENS = "manage_tokens"      # REST API tokens
    MANAGE_LINE = "manage_line"          # line and station settings


_OPERATOR = frozenset({Permission.CAPTURE, Permission.INSPECT, Permission.REVIEW, Permission.SWITCH_RECIPE})
_ENGINEER = _OPERATOR | {
    Permission.TRAIN, Permission.CHANGE_SETTINGS, Permission.EDIT_ROI, Permission.EDIT_RECIPES,
    Permission.PROMOTE, Permission.EDIT_DATASET, Permission.DELETE_SAMPLES, Permission.MANAGE_TOOLS,
    Permission.IMPORT_TOOLS, Permission.EXPORT_TOOLS,
}
_ADMIN = frozenset(Permission)

PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType({
    Role.VIEWER: frozenset(),
    Role.OPERATOR: _OPERATOR,
    Role.ENGINEER: frozenset(_ENGINEER),
    Role.ADMIN: _ADMIN,
})

PAGE_PERMISSIONS: Mapping[str, Permission | None] = MappingProxyType({
    "capture": Permission.CAPTURE,
    "dataset": None,
    "train": Permission.TRAIN,
    "live": Permission.INSPECT,
    "review": Permission.REVIEW,
    "analytics": None,
    "models": None,
    "fleet": None,
    "line": Permission.MANAGE_LINE,
    "api-tokens": Permission.MANAGE_TOKENS,
    "admin": Permission.MANAGE_USERS,
})


def allows(role: Role | None, permission: Permission) -> bool:
    """Whether ``role`` may perform ``permission`` (no role: nothing)."""
    return role is not None and permission in PERMISSIONS[Role(role)]


def matrix_markdown() -> str:
    """The matrix as the Markdown table the README shows."""
    roles = list(Role)
    lines = ["| permission | " + " | ".join(roles) + " |", "|---|" + "---|" * len(roles)]
    for permission in Permission:
        marks = " | ".join("yes" if permission in PERMISSIONS[role] else "-" for role in roles)
        lines.append(f"| {permission} | {marks} |")
    return "\n".join(lines)
