"""core.tools: creating, listing, looking up and configuring inspection tools."""

from __future__ import annotations

import pytest

from core.audit import SYSTEM, Actor, audit_log
from core.auth.roles import Role
from core.errors import InvalidInputError, NotFoundError
from core.studio import Studio
from core.tools import create_tool, get_tool, list_tools, parse_classes, set_classes, set_roi


def test_create_list_and_get(any_studio: Studio) -> None:
    created = create_tool(any_studio, "  solar-cell_2 ", "good, Crack ,crack,,finger", actor=SYSTEM)
    assert created.name == "solar-cell_2"
    assert created.classes == ["good", "crack", "finger"]
    assert created.good_class == "good"
    assert created.defect_classes == ["crack", "finger"]
    assert created.settings == {}
    assert created.active_versions == {} and not created.trained

    create_tool(any_studio, "bolt", ["good", "rust"], actor=SYSTEM)
    assert [t.name for t in list_tools(any_studio)] == ["bolt", "solar-cell_2"]

    fetched = get_tool(any_studio, "solar-cell_2")
    assert fetched == created
    assert fetched.as_dict()["classes"] == ["good", "crack", "finger"]


def test_no_tools_yet(studio: Studio) -> None:
    assert list_tools(studio) == []
    with pytest.raises(NotFoundError, match="none yet"):
        get_tool(studio, "anything")


@pytest.mark.parametrize("name", ["", "   ", "Widget", "has space", "-leading-dash", "_under", "a/b", "é", "x" * 64,
                                  "semi;colon"])
def test_invalid_tool_names_are_refused(studio: Studio, name: str) -> None:
    with pytest.raises(InvalidInputError, match="tool name"):
        create_tool(studio, name, "good,bad", actor=SYSTEM)
    assert list_tools(studio) == []


def test_longest_valid_name(studio: Studio) -> None:
    assert create_tool(studio, "x" * 63, "good,bad", actor=SYSTEM).name == "x" * 63


@pytest.mark.parametrize("classes", ["ok,bad", "", " , ", ["pass", "fail"]])
def test_classes_must_include_good(studio: Studio, classes: str | list[str]) -> None:
    with pytest.raises(InvalidInputError, match="'good'"):
        create_tool(studio, "t", classes, actor=SYSTEM)
    assert list_tools(studio) == []


@pytest.mark.parametrize("classes", ["good,bad class", "good,crack!", "good,-x"])
def test_invalid_class_names_are_refused(studio: Studio, classes: str) -> None:
    with pytest.raises(InvalidInputError, match="class name"):
        create_tool(studio, "t", classes, actor=SYSTEM)
    assert list_tools(studio) == []


def test_parse_classes_only_good_is_allowed() -> None:
    assert parse_classes("GOOD") == ["good"]
    assert parse_classes(["good", " good ", "dent"]) == ["good", "dent"]


def test_duplicate_name_is_refused_and_keeps_the_first(any_studio: Studio) -> None:
    create_tool(any_studio, "cell", "good,crack", actor=SYSTEM)
    with pytest.raises(InvalidInputError, match="already exists"):
        create_tool(any_studio, "cell", "good,stain,dust", actor=SYSTEM)
    tools = list_tools(any_studio)
    assert len(tools) == 1 and tools[0].classes == ["good", "crack"]


def test_unknown_tool_message_lists_existing_tools(any_studio: Studio) -> None:
    create_tool(any_studio, "beta", "good,bad", actor=SYSTEM)
    create_tool(any_studio, "alpha", "good,bad", actor=SYSTEM)
    with pytest.raises(NotFoundError) as caught:
        get_tool(any_studio, "gamma")
    assert str(caught.value) == "no tool named 'gamma' (tools: alpha, beta)"


def test_roi_and_classes_changes_are_audited(any_studio: Studio) -> None:
    create_tool(any_studio, "cell", "good,crack", actor=SYSTEM)
    ann = Actor("ann", "tablet-3", Role.ENGINEER)
    set_roi(any_studio, "cell", [0.1, 0.2, 0.9, 0.8], ann, (1280, 720))
    assert get_tool(any_studio, "cell").roi == [0.1, 0.2, 0.9, 0.8]
    assert get_tool(any_studio, "cell").settings["roi_frame"] == [1280, 720]
    set_classes(any_studio, "cell", "good,crack,dent", ann)
    assert get_tool(any_studio, "cell").classes == ["good", "crack", "dent"]
    entries = audit_log(any_studio, "cell")
    assert [(e.action, e.actor, e.device) for e in entries] == [("classes", "ann", "tablet-3"),
                                                                ("roi", "ann", "tablet-3")]
    assert entries[1].details == {"from": None, "to": [0.1, 0.2, 0.9, 0.8], "frame": [1280, 720]}
    with pytest.raises(InvalidInputError, match="'good'"):
        set_classes(any_studio, "cell", "dent", ann)
