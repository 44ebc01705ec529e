"""Model versions on real ELPV cells: a candidate leaves the active model alone, promotion and rollback
change what ``predict`` uses, deletion, comparison on held-out samples and reviews, and audit rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from core.audit import SYSTEM, Actor, audit_log
from core.auth.roles import Role
from core.config import Settings
from core.errors import InvalidInputError
from core.heatmap import defect_map, inspection_heatmap
from core.images import decode_image, encode_png
from core.inspect.decision import Verdict
from core.inspect.service import predict_image
from core.model_versions import (
    compare_versions,
    delete_version,
    list_versions,
    promote,
    rollback,
    samples_since_active,
    train_candidate,
)
from core.reviews import Reviewer, next_card, submit_review
from core.samples import import_path
from core.studio import Studio, open_studio
from core.tool_settings import change_settings
from core.tools import create_tool
from core.training import train
from storage import repository as repo
from storage.tables import Sample
from tests.inspections import classifier_of, record

TOOL = "cells"
ENGINEER = Actor("eva", "office-pc", Role.ENGINEER)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory, elpv_subset: Path):
    """v1 trained on 6 + 6 cells (active), v2 on all 40 minus 8 held out (candidate)."""
    folder = tmp_path_factory.mktemp("versions")
    studio = open_studio(Settings(folder / "data", f"sqlite:///{folder / 'data' / 'studio.db'}"))
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    good, bad = sorted((elpv_subset / "good").glob("*.png")), sorted((elpv_subset / "defective").glob("*.png"))
    for path in good[:6]:
        import_path(studio, TOOL, path, label="good", actor=SYSTEM)
    for path in bad[:6]:
        import_path(studio, TOOL, path, label="defective", actor=SYSTEM)
    first = train(studio, TOOL, actor=SYSTEM)
    for path in good[6:]:
        import_path(studio, TOOL, path, label="good", actor=SYSTEM)
    for path in bad[6:]:
        import_path(studio, TOOL, path, label="defective", actor=SYSTEM)
    with studio.transaction() as session:  # the 4 + 4 newest cells of each class are the held-out set
        newest = [s.id for label in ("good", "defective") for s in
                  session.scalars(select(Sample).where(Sample.label == label).order_by(Sample.id.desc()).limit(4))]
        session.execute(update(Sample).where(Sample.id.in_(newest)).values(split="held_out"))
    gained = samples_since_active(studio, TOOL)
    candidate = train_candidate(studio, TOOL, ENGINEER)
    return studio, first.version_id, candidate, gained, good, bad


def test_a_candidate_does_not_replace_the_active_model(versions) -> None:
    studio, v1, candidate, gained, good, _ = versions
    assert gained == {"good": 10, "defective": 10}  # 14 + 14 new minus the 4 + 4 held out
    assert candidate.n_samples == 32  # held-out samples are not trained on
    statuses = {v.id: v.status for v in list_versions(studio, TOOL)}
    assert statuses == {v1: "active", candidate.version_id: "candidate"}
    assert predict_image(studio, TOOL, "x.png", good[0].read_bytes(), record=False,
        actor=SYSTEM).inspection.deciding_version == v1
    assert [(r.action, r.actor, r.device) for r in audit_log(studio, TOOL)][:1] == \
        [("train_candidate", "eva", "office-pc")]


def test_compare_on_held_out_samples_and_reviews(versions, elpv_subset: Path) -> None:
    studio, v1, candidate, *_ = versions
    comparison = compare_versions(studio, TOOL, [candidate.version_id, v1])
    for version in (v1, candidate.version_id):
        held_out = comparison.versions[version]["held_out"]
        assert held_out.classes == ["good", "defective"]
        assert held_out.n == 8
        assert sum(map(sum, held_out.confusion)) == 8 and [sum(row) for row in held_out.confusion] == [4, 4]
        assert 0.0 <= held_out.balanced_accuracy <= 1.0 and set(held_out.recall) == {"good", "defective"}
        assert held_out.balanced_accuracy == pytest.approx(sum(held_out.recall.values()) / 2)
        assert 0.0 <= held_out.review_rate <= 1.0 and held_out.ms_per_image > 0
        assert comparison.versions[version]["reviewed"].n == 0  # nothing reviewed yet


def test_promote_and_rollback_change_what_predict_uses(versions, tmp_path: Path) -> None:
    studio, v1, candidate, _, good, bad = versions
    v2 = candidate.version_id
    image = bad[-1].read_bytes()
    before = predict_image(studio, TOOL, "x.png", image, record=False, actor=SYSTEM)
    v1_threshold = classifier_of(studio, TOOL).threshold

    assert promote(studio, TOOL, v2, ENGINEER) == v1
    after = predict_image(studio, TOOL, "x.png", image, record=False, actor=SYSTEM)
    assert (before.inspection.deciding_version, after.inspection.deciding_version) == (v1, v2)
    assert after.inspection.probabilities != before.inspection.probabilities  # another model really answers
    assert {v.id: v.status for v in list_versions(studio, TOOL)} == {v1: "retired", v2: "active"}
    with pytest.raises(InvalidInputError, match="already the active model"):
        promote(studio, TOOL, v2, ENGINEER)

    change_settings(studio, TOOL, ENGINEER, {"threshold.classifier": 0.9})  # the operator moved v2's threshold
    assert classifier_of(studio, TOOL).threshold == 0.9
    assert rollback(studio, TOOL, Actor("olaf", "line-2", Role.ENGINEER)) == v1
    assert classifier_of(studio, TOOL).threshold == v1_threshold != 0.9  # v1's own calibration again
    again = predict_image(studio, TOOL, "x.png", image, record=False, actor=SYSTEM)
    assert again.inspection.deciding_version == v1
    assert again.inspection.probabilities == before.inspection.probabilities
    with pytest.raises(InvalidInputError, match="cannot be deleted"):
        delete_version(studio, TOOL, v1, ENGINEER)

    rows = [(r.action, r.actor, r.device, r.target, r.details.get("replaced")) for r in audit_log(studio, TOOL)]
    assert audit_log(studio, TOOL)[0].details["dropped_override"] == {"threshold": 0.9}
    assert rows[:3] == [("rollback", "olaf", "line-2", f"model_version {v1}", v2),
                        ("settings", "eva", "office-pc", f"tool {TOOL}", None),  # every change is audited
                        ("promote", "eva", "office-pc", f"model_version {v2}", v1)]


def test_reviewed_inspections_count_in_the_comparison_and_delete(versions) -> None:
    studio, v1, candidate, _, good, bad = versions
    png = encode_png(decode_image(bad[0].read_bytes()).rgb)
    record(studio, TOOL, Verdict("review", "good", 0.45), {"good": 0.55, "defective": 0.45}, png)
    reviewer = Reviewer("ana", "tablet-1", role=Role.OPERATOR)
    card = next_card(studio, reviewer, TOOL)
    submit_review(studio, card.inspection_id, "defective", reviewer)
    reviewed = compare_versions(studio, TOOL, [v1]).versions[v1]["reviewed"]
    assert reviewed.n == 1 and [sum(row) for row in reviewed.confusion] == [0, 1]

    extra = train_candidate(studio, TOOL, ENGINEER)
    folders = {p.name for p in (studio.settings.models_dir / TOOL).iterdir()}
    delete_version(studio, TOOL, extra.version_id, ENGINEER)
    assert extra.version_id not in [v.id for v in list_versions(studio, TOOL)]
    assert len({p.name for p in (studio.settings.models_dir / TOOL).iterdir()}) == len(folders) - 1
    entry = audit_log(studio, TOOL)[0]
    assert (entry.action, entry.target, entry.actor) == ("delete", f"model_version {extra.version_id}", "eva")


def test_defect_heatmap_of_an_inspection(versions) -> None:
    studio, v1, _, _, _, bad = versions
    model = classifier_of(studio, TOOL)
    rgb = decode_image(bad[1].read_bytes()).rgb
    inspection = record(studio, TOOL, Verdict("fail", "defective", 0.9), {"good": 0.1, "defective": 0.9},
                        encode_png(rgb), version_id=model.version_id)
    with studio.transaction() as session:
        folder = studio.settings.models_dir / repo.get_model_version(session, model.version_id).artifact_dir
    heat = defect_map(folder, rgb)
    assert heat.shape == rgb.shape[:2] and heat.min() >= 0.0 and heat.max() <= 1.0 and heat.std() > 0.05
    shown = inspection_heatmap(studio, inspection)
    assert shown.shape == rgb.shape and shown.dtype == np.uint8 and not np.array_equal(shown, rgb)
    assert inspection_heatmap(studio, 10**6) is None


def test_anomaly_versions_compare_as_good_against_anomaly(versions) -> None:
    """An anomaly model's version is compared on the same held-out cells: every defect class counts as
    an anomaly, and its promotion replaces only the active anomaly model."""
    studio, v1, *_ = versions
    anomaly = train(studio, TOOL, method="anomaly", activate=False, actor=SYSTEM).version_id
    result = compare_versions(studio, TOOL, [anomaly]).versions[anomaly]["held_out"]
    assert result.classes == ["good", "anomaly"] and result.n == 8
    assert [sum(row) for row in result.confusion] == [4, 4]  # the 4 defective cells are anomalies to find
    assert result.balanced_accuracy == pytest.approx(sum(result.recall.values()) / 2)
    assert promote(studio, TOOL, anomaly, ENGINEER) is None  # no anomaly model was active
    assert classifier_of(studio, TOOL).version_id == v1  # the classifier is untouched
    shown = inspection_heatmap(studio, record(studio, TOOL, Verdict("fail", "anomaly", 0.9), image=good_png(studio),
                                              version_id=anomaly))
    assert shown is not None  # the review card shows the anomaly model's map too


def good_png(studio: Studio) -> bytes:
    with studio.transaction() as session:
        key = session.scalars(select(Sample.image_key).where(Sample.label == "good")).first()
    return studio.images.read(key)
