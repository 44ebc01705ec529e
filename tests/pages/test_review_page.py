"""The review card and the models page through AppTest on a real trained studio (SQLite, real ELPV
cells): tap Good, tap a defect class, Not sure, Undo, the heatmap toggle; promote and roll back."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from core.audit import SYSTEM, Actor, audit_log
from core.auth.roles import Role
from core.images import decode_image, encode_png
from core.inspect.decision import Verdict
from core.inspect.service import predict_image
from core.model_versions import list_versions, train_candidate
from core.reviews import queue_counts
from core.samples import class_counts
from core.studio import Studio
from core.tool_settings import change_settings, tool_settings
from storage.tables import Review
from tests.inspections import classifier_of, record
from tests.pages.test_pages import (  # noqa: F401
    DEFECTIVE_CELLS,
    GOOD_CELLS,
    TOOL,
    button,
    empty_studio,
    metrics,
    open_page,
    texts,
    trained_studio,
    trained_template,
)


def flag(studio: Studio, paths: list[Path], score: float = 0.45) -> list[int]:
    """Inspections of real cells the model sent to a person, as the Live page records them."""
    return [record(studio, TOOL, Verdict("review", "good", score), {"good": 1 - score, "defective": score},
                   encode_png(decode_image(p.read_bytes()).rgb), station="line-1") for p in paths]


def card_id(at) -> str:  # noqa: ANN001 - an AppTest
    return next(m for m in texts(at.markdown) if m.startswith("**Inspection #")).split("#", 1)[1].split("*", 1)[0]


def reviews(studio: Studio) -> list[tuple[int, str]]:
    with studio.transaction() as session:
        return [tuple(r) for r in session.execute(select(Review.inspection_id, Review.verdict).order_by(Review.id))]


def test_tap_good_tap_a_defect_class_and_undo(trained_studio: Studio) -> None:
    (v1,) = [v.id for v in list_versions(trained_studio, TOOL)]
    first, second, third = flag(trained_studio, [GOOD_CELLS[5], DEFECTIVE_CELLS[5], DEFECTIVE_CELLS[6]])
    at = open_page("review")
    assert card_id(at) == str(first)
    assert metrics(at)["Model says"] == "REVIEW · good" and len(at.image) == 1
    assert [b.label for b in at.button if b.key.startswith("verdict-")] == ["Good", "Defective"]
    assert at.button(key="undo").disabled

    button(at, "Good").click().run()
    assert not at.exception and card_id(at) == str(second)  # the next card at once
    button(at, "Defective").click().run()
    assert card_id(at) == str(third)
    assert reviews(trained_studio) == [(first, "good"), (second, "defective")]
    assert class_counts(trained_studio, TOOL) == {"good": 21, "defective": 21}

    at.button(key="undo").click().run()
    assert not at.exception
    assert card_id(at) == str(second)  # the undone card is back first
    assert reviews(trained_studio) == [(first, "good")]
    assert class_counts(trained_studio, TOOL) == {"good": 21, "defective": 20}
    button(at, "Defective").click().run()
    assert reviews(trained_studio) == [(first, "good"), (second, "defective")]
    actions = [(e.action, e.target, e.actor) for e in audit_log(trained_studio, TOOL)]
    trained = ("train_activate", f"model_version {v1}", "system")  # the template's training, audited too
    assert actions == [("verdict", f"inspection {second}", "operator"), ("undo", f"inspection {second}", "operator"),
                       ("verdict", f"inspection {second}", "operator"), ("verdict", f"inspection {first}", "operator"),
                       trained]


@pytest.mark.signed_in_as("operator")
def test_not_sure_skips_and_the_account_and_device_reach_the_audit_log(trained_studio: Studio) -> None:
    first, second = flag(trained_studio, [GOOD_CELLS[7], GOOD_CELLS[8]])
    at = open_page("review")
    at.text_input(key="reviewer-device").set_value("tablet-3").run()
    assert card_id(at) == str(first)
    at.button(key="skip").click().run()
    assert card_id(at) == str(second)
    button(at, "Good").click().run()
    assert reviews(trained_studio) == [(second, "good")]
    assert sum(queue_counts(trained_studio, TOOL).values()) == 1  # the skipped one still waits
    assert "skipped by you" in texts(at.info)[0]
    assert [(e.action, e.actor, e.device) for e in audit_log(trained_studio, TOOL)] == \
        [("verdict", "operator", "tablet-3"), ("skip", "operator", "tablet-3"), ("train_activate", "system", "")]


def test_heatmap_toggle_shows_the_class_activation_map(trained_studio: Studio) -> None:
    flag(trained_studio, [DEFECTIVE_CELLS[7]])
    at = open_page("review")
    plain = at.image[0].proto.imgs[0].url
    at.toggle(key="heatmap").set_value(True).run()
    assert not at.exception and len(at.image) == 1
    assert at.image[0].proto.imgs[0].url != plain  # another picture: the overlay
    assert not [c for c in texts(at.caption) if c.startswith("No defect map")]


def test_models_page_promotes_and_rolls_back(trained_studio: Studio) -> None:
    v1 = list_versions(trained_studio, TOOL)[0].id
    v2 = train_candidate(trained_studio, TOOL, Actor("eva", "pc", Role.ENGINEER, "page"), profile="fast").version_id
    at = open_page("models")
    assert [m.value for m in at.metric] == ["+0", "+0"]
    assert at.button(key="promote").label == f"Promote v{v2}"
    at.button(key="promote").click().run()
    assert not at.exception
    assert classifier_of(trained_studio, TOOL).version_id == v2
    assert predict_image(trained_studio, TOOL, "x.png", GOOD_CELLS[0].read_bytes(),
                         record=False, actor=SYSTEM).inspection.deciding_version == v2
    assert at.button(key="promote").label == f"Roll back to v{v1}"
    at.button(key="promote").click().run()
    assert classifier_of(trained_studio, TOOL).version_id == v1
    actions = [(e.action, e.target) for e in audit_log(trained_studio, TOOL)]
    assert actions[:4] == [("rollback", f"model_version {v1}"), ("sign", f"model_version {v1}"),
                           ("promote", f"model_version {v2}"), ("sign", f"model_version {v2}")]  # e-signed first
    assert any(t.startswith("Signed: Operator (operator), approved") for t in texts(at.text))  # on the record
    at.button(key="compare").click().run()
    assert not at.exception and "Side by side" in texts(at.subheader)


def test_models_page_review_settings_open_and_save_with_shares_set_elsewhere(trained_studio: Studio) -> None:
    change_settings(trained_studio, TOOL, SYSTEM, {"audit_share": 0.5, "holdout_share": 0.8})  # `tools set`
    at = open_page("models")
    shares = {s.label: s.value for s in at.slider}
    assert shares["Share of passes drawn for audit"] == 0.5
    assert shares["Share of reviewed images held out for comparisons"] == 0.8
    next(s for s in at.slider if s.label == "Share of passes drawn for audit").set_value(0.1)
    at.button(key="save-review-settings").click().run()
    assert not at.exception
    assert tool_settings(trained_studio, TOOL).audit_share == 0.1
    (entry, *_) = audit_log(trained_studio, TOOL)
    assert entry.action == "settings" and entry.details["changes"]["audit_share"] == {"from": 0.5, "to": 0.1}
