"""Signatures on the record in exports and in the database: a signed verdict's printed name, UTC time and
meaning appear in the inspections CSV (the one export path of the Analytics page and the CLI), and the
database itself refuses to edit or delete a signature row (append-only triggers), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from sqlalchemy import text

from core.analytics.export import SIGNATURE_COLUMNS, write_csv
from core.analytics.filters import AnalyticsFilter
from core.audit import SYSTEM
from core.auth import accounts, signatures
from core.auth.roles import Role
from core.inspect.decision import Verdict
from core.reviews import correct_verdict, submit_review
from core.studio import Studio
from core.tool_settings import change_settings
from core.tools import create_tool
from tests.inspections import record

PASSWORD = "correct horse 1"
TOOL = "cells"


def test_a_signed_verdict_and_its_correction_are_in_the_inspections_csv(any_studio: Studio) -> None:
    create_tool(any_studio, TOOL, "good,crack", actor=SYSTEM)
    change_settings(any_studio, TOOL, SYSTEM, {"review.signed": True, "audit_share": 0.0})
    account = accounts.create_user(any_studio, SYSTEM, "sam", PASSWORD, Role.OPERATOR, "Sam Signer")
    sam = accounts.actor_for(account, device="tablet", via="page")
    failed, corrected, unsigned = (record(any_studio, TOOL, Verdict("fail", "crack", 0.9)) for _ in range(3))
    submit_review(any_studio, failed, "crack", sam, signature_password=PASSWORD)
    submit_review(any_studio, corrected, "crack", sam, signature_password=PASSWORD)
    correction = correct_verdict(any_studio, corrected, "good", sam, "scratch on glass",
                                 signature_password=PASSWORD)
    submit_review(any_studio, unsigned, "crack", SYSTEM)  # the system does not sign

    out = io.StringIO()
    write_csv(any_studio, AnalyticsFilter(TOOL, date(2020, 1, 1), date.today()), out, chunk_rows=2)
    rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    first = signatures.signatures_for(any_studio, "inspection", failed)[0]
    assert [rows[failed][c] for c in SIGNATURE_COLUMNS] == [
        "Sam Signer", first.signed_at.isoformat(sep=" "), "reviewed", first.content_hash]
    newest = signatures.signatures_for(any_studio, "inspection", corrected)[-1]
    assert newest.id == correction and newest.corrects_id is not None
    assert (rows[corrected]["verdict"], rows[corrected]["signed_by"], rows[corrected]["signature_content_hash"]) == (
        "good", "Sam Signer", newest.content_hash)
    assert [rows[unsigned][c] for c in SIGNATURE_COLUMNS] == [""] * len(SIGNATURE_COLUMNS)
    assert PASSWORD not in out.getvalue()


@pytest.mark.parametrize("statement", ["UPDATE signature SET full_name = 'Someone Else'", "DELETE FROM signature"])
def test_the_database_refuses_to_edit_or_delete_a_signature(any_studio: Studio, statement: str) -> None:
    account = accounts.create_user(any_studio, SYSTEM, "sam", PASSWORD, Role.ENGINEER, "Sam Signer")
    signer = accounts.actor_for(account, device="pc", via="page")
    signed = signatures.sign(any_studio, signer, PASSWORD, "approved", "model_version", 7, {"version": 7})
    with pytest.raises(Exception, match="append-only"):  # noqa: PT011 - the driver's own error class
        with any_studio.engine.begin() as connection:
            connection.execute(text(f"{statement} WHERE id = :id"), {"id": signed.id})
    assert signatures.signatures_for(any_studio, "model_version", 7) == [signed]
