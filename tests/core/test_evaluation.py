"""A version evaluated on held-out cells (curves, rates, mistakes), the rates realised on the line from
operators' verdicts, and the anomaly model extended into a candidate (service and CLI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from core.audit import SYSTEM, Actor, audit_log
from core.auth.roles import Role
from core.config import Settings
from core.errors import InvalidInputError
from core.evaluation import operating_rates, realised_rates, thumbnail, wilson
from core.inspect.decision import Verdict
from core.model_versions import compare_versions, extend_anomaly, list_versions, samples_since_active
from core.reviews import Reviewer, next_card, submit_review
from core.samples import import_path
from core.studio import open_studio
from core.tool_settings import change_settings
from core.tools import create_tool
from core.training import train
from models.registration import PartLocator
from storage.tables import ModelVersion, Sample
from tests.inspections import record
from tests.test_cli_e2e import _cli, _env
from tests.test_cli_review import _json

TOOL = "cells"
ENGINEER = Actor("eva", "office-pc", Role.ENGINEER)


def test_rates_and_intervals() -> None:
    rates = operating_rates([True, True, True, False, False, False, False],
                            ["pass", "fail", "review", "fail", "pass", "pass", "review"])
    assert rates["escape"]["rate"] == 0.5 and rates["escape"]["n"] == 2  # 1 of the 2 auto-decided defectives
    assert rates["false_reject"]["rate"] == pytest.approx(1 / 3) and rates["false_reject"]["n"] == 3
    assert rates["review_share"]["rate"] == pytest.approx(2 / 7)
    low, high = wilson(1, 3)
    assert 0.0 < low < 1 / 3 < high < 1.0 and wilson(0, 0) is None


@pytest.fixture(scope="module")
def anomaly_studio(tmp_path_factory: pytest.TempPathFactory, elpv_subset: Path):
    """An anomaly model (fast profile, position correction on) on 6 good cells; 3 + 3 cells held out; 4 goods
    added after it."""
    data_dir = tmp_path_factory.mktemp("evaluation") / "data"
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    change_settings(studio, TOOL, ENGINEER, {"policy": "anomaly only", "robustness.position": "on"})
    good, bad = sorted((elpv_subset / "good").glob("*.png")), sorted((elpv_subset / "defective").glob("*.png"))
    for path in good[:9]:
        import_path(studio, TOOL, path, label="good", actor=SYSTEM)
    for path in bad[:3]:
        import_path(studio, TOOL, path, label="defective", actor=SYSTEM)
    with studio.transaction() as session:
        held = [s.id for s in session.scalars(select(Sample).order_by(Sample.id))][6:]  # 3 goods + 3 defectives
        session.execute(update(Sample).where(Sample.id.in_(held)).values(split="held_out"))
    version = train(studio, TOOL, method="anomaly", profile="fast", actor=SYSTEM).version_id
    for path in good[9:13]:
        import_path(studio, TOOL, path, label="good", actor=SYSTEM)
    return studio, version, data_dir


def test_evaluation_of_a_version_on_held_out_cells(anomaly_studio) -> None:
    studio, version, _ = anomaly_studio
    held_out = compare_versions(studio, TOOL, [version]).versions[version]["held_out"]
    assert held_out.n == 6 and held_out.curves is not None
    assert 0.0 <= held_out.curves["auc"] <= 1.0 and held_out.curves["defective_share"] == 0.5
    assert held_out.curves["roc"]["fpr"][0] == 0.0 and held_out.curves["roc"]["tpr"][-1] == 1.0
    assert set(held_out.rates) == {"escape", "false_reject", "review_share"}
    assert held_out.rates["review_share"]["n"] == 6
    for mistake in held_out.misclassified:  # each with its image, shown as a thumbnail
        assert mistake["decision"] != "review" and mistake["label"] != mistake["predicted"]
        assert thumbnail(studio, mistake["key"])[:2] == b"\xff\xd8"


def test_realised_rates_from_audits_and_reviewed_fails(anomaly_studio) -> None:
    studio, version, _ = anomaly_studio
    assert realised_rates(studio, TOOL, version)["escape"] is None  # nothing reviewed yet
    png = (Path(__file__).resolve().parent.parent / "data" / "elpv" / "good").glob("*.png")
    image = next(png).read_bytes()
    for _ in range(3):  # 3 audited passes, 4 fails, 5 passes nobody looked at
        record(studio, TOOL, Verdict("pass", "good", 0.1), image=image, version_id=version, audit_share=1.0)
    for _ in range(4):
        record(studio, TOOL, Verdict("fail", "anomaly", 0.9), image=image, version_id=version)
    for _ in range(5):
        record(studio, TOOL, Verdict("pass", "good", 0.1), version_id=version)
    reviewer = Reviewer("ana", "tablet", role=Role.OPERATOR)
    verdicts = iter(["defective", "good", "good"])
    while (card := next_card(studio, reviewer, TOOL)) is not None:
        submit_review(studio, card.inspection_id, next(verdicts), reviewer)
    partial = realised_rates(studio, TOOL, version)
    assert partial["escape"] is None and "0 reviewed fail" in partial["note"]
    assert partial["defective_among_audited_passes"]["rate"] == pytest.approx(1 / 3)
    with studio.transaction() as session:  # an operator also looks at two fails: one is good
        from storage.tables import Inspection

        fails = list(session.scalars(select(Inspection.id).where(Inspection.decision == "fail").limit(2)))
    for inspection_id, verdict in zip(fails, ("defective", "good"), strict=True):
        submit_review(studio, inspection_id, verdict, reviewer)
    realised = realised_rates(studio, TOOL, version)
    assert (realised["passes"], realised["fails"]) == (8, 4)
    # escape = N d / (N d + M f) with d = 1/3, f = 1/2
    assert realised["escape"]["rate"] == pytest.approx(8 / 3 / (8 / 3 + 4 / 2))
    low, high = realised["escape"]["interval"]
    assert low <= realised["escape"]["rate"] <= high and realised["escape"]["rests_on"] == 5


def _folder(studio, version_id: int) -> Path:
    with studio.transaction() as session:
        return studio.settings.models_dir / session.get(ModelVersion, version_id).artifact_dir


def test_extend_the_anomaly_model_into_a_candidate(anomaly_studio) -> None:
    studio, version, data_dir = anomaly_studio
    assert samples_since_active(studio, TOOL, "anomaly")["good"] >= 4
    result = extend_anomaly(studio, TOOL, ENGINEER)
    assert result.validation["extended_from"] == version and result.validation["goods_added"] >= 4
    assert result.n_samples == 6 + result.validation["goods_added"]
    statuses = {v.id: v.status for v in list_versions(studio, TOOL)}
    assert statuses[version] == "active" and statuses[result.version_id] == "candidate"
    entry = audit_log(studio, TOOL)[0]
    assert (entry.action, entry.actor, entry.details["extended_from"]) == ("extend_candidate", "eva", version)
    references = [PartLocator.load(_folder(studio, v)) for v in (version, result.version_id)]
    assert all(r is not None for r in references)  # the base's part reference goes with the candidate
    assert np.array_equal(references[0].reference, references[1].reference)
    compared = compare_versions(studio, TOOL, [result.version_id, version]).versions
    assert compared[result.version_id]["held_out"].n == 6  # compared like any candidate

    env = _env(data_dir)
    by_cli = _json(_cli(env, "models", "extend", "--tool", TOOL, "--user", "olaf", "--device", "pc-2"))
    assert by_cli["method"] == "anomaly" and by_cli["version_id"] not in (version, result.version_id)
    evaluated = _json(_cli(env, "models", "evaluate", "--tool", TOOL, "--version", str(version)))
    assert evaluated["held_out"]["n"] == 6 and "escape" in evaluated["held_out"]["rates"]
    assert evaluated["realised"]["version"] == version


def test_extend_needs_an_active_anomaly_model(studio) -> None:
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    with pytest.raises(InvalidInputError, match="no active anomaly model"):
        extend_anomaly(studio, TOOL, ENGINEER)
