"""E-signatures on the pages: the threshold change on the Train page and a signed review verdict need the
signed-in account's password (re-entered beside the action, with the meaning shown); a wrong one is
refused, changes nothing and is audited; the signature (printed name, meaning, UTC time) is then shown on
the record and written in the audit CSV; a signed verdict cannot be undone, only corrected by a new
signed record that refers to it."""

from __future__ import annotations

import pytest

from core.audit import SYSTEM, audit_log
from core.audit_trail import csv_text
from core.auth.accounts import actor_for
from core.auth.roles import Role
from core.auth.signatures import signatures_for
from core.errors import InvalidInputError
from core.inspect.service import predict_image
from core.reviews import as_reviewer, correct_verdict, submit_review, undo_review
from core.studio import Studio
from core.tool_settings import change_settings, tool_settings
from pages.identity import ACCOUNT_KEY
from tests.pages.conftest import PASSWORD, account
from tests.pages.test_pages import DEFECTIVE_CELLS, TOOL, button, open_page, texts, trained_studio, trained_template  # noqa: F401


def test_a_threshold_change_is_signed_on_the_train_page(trained_studio: Studio) -> None:
    at = open_page("train")
    field = at.text_input(key="threshold-signature")
    assert field.label == "Password of operator to sign" and "approved" in field.help
    field.set_value("not-my-password")
    at.slider[0].set_value(0.8)
    button(at, "Use this threshold").click().run()
    assert any("Not signed" in e for e in texts(at.error))
    assert tool_settings(trained_studio, TOOL).thresholds == {}  # nothing changed
    assert audit_log(trained_studio)[0].action == "sign_refused"

    at.text_input(key="threshold-signature").set_value(PASSWORD)
    at.slider[0].set_value(0.8)
    button(at, "Use this threshold").click().run()
    assert not at.exception and not at.error
    assert tool_settings(trained_studio, TOOL).thresholds == {"classifier": 0.8}
    (signature,) = signatures_for(trained_studio, "tool_settings", TOOL)
    assert (signature.username, signature.full_name, signature.meaning) == ("operator", "Operator", "approved")
    assert any(f"Signed: {signature.as_text()}" in t for t in texts(at.text))  # on the record, on screen
    assert f"Operator (operator), approved, {signature.signed_at:%Y-%m-%d %H:%M:%S} UTC" in csv_text(trained_studio)


def test_a_signed_verdict_cannot_be_undone_and_is_corrected_by_a_new_signed_record(trained_studio: Studio) -> None:
    change_settings(trained_studio, TOOL, SYSTEM, {"review.signed": True, "audit_share": 0.0})
    failed = [predict_image(trained_studio, TOOL, p.name, p.read_bytes(), actor=SYSTEM) for p in DEFECTIVE_CELLS]
    fail_id = next(p.inspection_id for p in failed if p.inspection.decision == "fail")
    reviewer = actor_for(account(Role.OPERATOR), device="tablet", via="page")
    with pytest.raises(Exception, match="needs your password"):
        submit_review(trained_studio, fail_id, "defective", reviewer)
    review_id = submit_review(trained_studio, fail_id, "defective", reviewer, signature_password=PASSWORD)
    (first,) = signatures_for(trained_studio, "inspection", fail_id)
    assert first.meaning == "reviewed" and first.username == "operator"
    with pytest.raises(InvalidInputError, match="signed and cannot be undone"):
        undo_review(trained_studio, review_id, as_reviewer(reviewer))
    with pytest.raises(Exception, match="Not signed"):
        correct_verdict(trained_studio, fail_id, "good", reviewer, "misread the crack", "wrong-password")
    correction = correct_verdict(trained_studio, fail_id, "good", reviewer, "misread the crack", PASSWORD)
    first_again, second = signatures_for(trained_studio, "inspection", fail_id)
    assert first_again == first  # the first signed record is unchanged
    assert second.id == correction and second.corrects_id == first.id
    entry = audit_log(trained_studio)[0]
    assert (entry.action, entry.details["previous_verdict"], entry.details["verdict"],
            entry.details["corrects_signature"]) == ("verdict_correction", "defective", "good", first.id)
    # the Review page shows both signatures of the record in its correction panel
    at = open_page("review")
    at.number_input(key="correct-id").set_value(fail_id).run()
    shown = texts(at.text)
    assert any(f"signature {first.id}," in t for t in shown)
    assert any(f"corrects signature {first.id}" in t for t in shown)
    assert at.session_state[ACCOUNT_KEY].username == "operator"
