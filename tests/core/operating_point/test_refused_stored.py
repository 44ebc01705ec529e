"""A point whose adaptation the cross-check refused, stored with the tool on each backend: the rule and
the reason survive the round trip and the audit entry says why (SQLite and PostgreSQL)."""

from __future__ import annotations

import numpy as np

from core.audit import SYSTEM, audit_log
from core.operating_point.choose import Targets, choose
from core.operating_point.point import OperatingPoint
from core.studio import Studio
from core.tool_settings import change_settings, tool_settings
from core.tools import create_tool
from tests.core.operating_point.test_adapt import _two_models

TOOL = "cells"


def test_a_refused_adaptation_is_stored_and_audited_with_its_reason(any_studio: Studio) -> None:
    rng = np.random.default_rng(6)
    calibration, is_defect = _two_models(rng, 100, 0.5)
    new, _ = _two_models(rng, 400, 0.3, broken=0.5)
    choice = choose(calibration, is_defect, Targets(0.2), new_scores=new)
    assert not choice.adapted.used
    create_tool(any_studio, TOOL, ["good", "defective"], actor=SYSTEM)
    change_settings(any_studio, TOOL, SYSTEM,
                    {"operating_point": OperatingPoint.from_choice(choice, {"classifier": 1, "anomaly": 2})})
    stored = tool_settings(any_studio, TOOL).operating_point
    assert stored.rule == choice.rule and stored.rule.startswith("training images only (adaptation refused")
    assert stored.promised["adapted"]["used"] is False
    assert stored.promised["adapted"]["refused"] == choice.adapted.refused
    assert set(stored.promised["adapted"]["model_shares"]) == {"classifier", "anomaly"}
    assert (stored.lo, stored.hi) == (choice.lo, choice.hi)
    audited = audit_log(any_studio, TOOL)[0].details["changes"]["operating_point"]["to"]
    assert audited["promised"]["adapted"]["refused"] == choice.adapted.refused
