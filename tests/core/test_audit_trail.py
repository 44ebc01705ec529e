"""The tamper-evident audit trail on SQLite and PostgreSQL: an intact chain verifies; an UPDATE, a DELETE and
an INSERT in the middle made with raw SQL (triggers dropped first, as the database owner could) are each
found and named; the triggers refuse UPDATE and DELETE; two processes appending at once keep one chain."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

import pytest
from sqlalchemy import text

from core.audit import Actor, audit_log, log
from core.audit_trail import Anchor, chain_head, csv_text, verify
from core.cli import main
from core.config import Settings
from core.studio import Studio, open_studio
from storage.audit_chain import REDACTED, digest

ANA = Actor("ana", "pc-1")


def append(studio: Studio, count: int, actor: Actor = ANA) -> None:
    for i in range(count):
        with studio.transaction() as session:
            log(session, actor, "settings", f"tool t{i}", None, changes={"threshold": i / 10})


def drop_triggers(studio: Studio) -> None:
    """What whoever owns the database can do before tampering."""
    with studio.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            for name in ("audit_log_no_update", "audit_log_no_delete", "audit_chain_head_no_delete"):
                connection.exec_driver_sql(f"DROP TRIGGER {name}")
        else:
            connection.exec_driver_sql("DROP TRIGGER audit_log_append_only ON audit_log")


def raw(studio: Studio, sql: str, **params: object) -> None:
    with studio.engine.begin() as connection:
        connection.execute(text(sql), params)


def kinds(studio: Studio) -> list[tuple[str, int | None]]:
    return [(p.kind, p.seq) for p in verify(studio).problems]


def test_an_intact_chain_verifies_and_every_row_links_to_the_one_before(any_studio: Studio) -> None:
    assert verify(any_studio).ok and verify(any_studio).rows == 0
    empty = chain_head(any_studio)
    assert empty.seq == 0 and verify(any_studio, expect=empty).ok  # an empty trail's recorded head is its start
    assert not verify(any_studio, expect=Anchor(0, "f" * 64)).ok  # a start that is not the genesis
    append(any_studio, 5)
    report = verify(any_studio)
    assert report.ok and report.rows == 5 and report.head.seq == 5
    rows = list(reversed(audit_log(any_studio)))
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    assert verify(any_studio, expect=chain_head(any_studio)).ok


def test_the_triggers_refuse_update_and_delete(any_studio: Studio) -> None:
    append(any_studio, 2)
    for sql in ("UPDATE audit_log SET actor = 'eve' WHERE seq = 1", "DELETE FROM audit_log WHERE seq = 2",
                "DELETE FROM audit_chain_head"):
        with pytest.raises(Exception, match="append-only"):
            raw(any_studio, sql)
    assert verify(any_studio).ok


def test_an_update_of_one_row_is_found(any_studio: Studio) -> None:
    append(any_studio, 5)
    drop_triggers(any_studio)
    raw(any_studio, "UPDATE audit_log SET actor = 'eve' WHERE seq = 3")
    [problem] = verify(any_studio).problems
    assert (problem.kind, problem.seq) == ("edited", 3) and "was edited" in problem.message


def test_a_deleted_row_is_found(any_studio: Studio) -> None:
    append(any_studio, 5)
    drop_triggers(any_studio)
    raw(any_studio, "DELETE FROM audit_log WHERE seq = 3")
    [problem] = verify(any_studio).problems
    assert (problem.kind, problem.seq) == ("deleted", 4) and "seq 3 missing" in problem.message


def test_deleting_the_newest_row_is_found_and_an_exported_head_catches_a_cover_up(any_studio: Studio) -> None:
    append(any_studio, 4)
    recorded = chain_head(any_studio)
    drop_triggers(any_studio)
    raw(any_studio, "DELETE FROM audit_log WHERE seq = 4")
    assert kinds(any_studio) == [("deleted", None)]
    # the tamperer also moves the head back: only the head recorded outside the database still tells
    previous = [r for r in audit_log(any_studio) if r.seq == 3][0]
    raw(any_studio, "UPDATE audit_chain_head SET seq = 3, hash = :h", h=previous.hash)
    assert verify(any_studio).ok
    report = verify(any_studio, expect=recorded)
    assert [p.kind for p in report.problems] == ["anchor"] and "newest rows were deleted" in report.problems[0].message


def test_a_row_inserted_in_the_middle_is_found_even_with_a_well_computed_hash(any_studio: Studio) -> None:
    append(any_studio, 5)
    drop_triggers(any_studio)
    second = [r for r in audit_log(any_studio) if r.seq == 2][0]
    forged = {"seq": 3, "created_at": second.created_at, "actor": "eve", "device": "pc-1", "action": "promote",
              "target": "model_version 9", "tool_id": None, "details": {}, "prev_hash": second.hash}
    raw(any_studio, "INSERT INTO audit_log (seq, created_at, actor, device, action, target, tool_id, details, "
                    "prev_hash, hash) VALUES (:seq, :created_at, :actor, :device, :action, :target, :tool_id, '{}', "
                    ":prev_hash, :hash)", **forged, hash=digest(**forged))
    report = verify(any_studio)
    [problem] = report.problems
    forged_id = max(r.id for r in audit_log(any_studio))
    assert (problem.kind, problem.row_id, problem.seq) == ("inserted", forged_id, 3)
    assert "was inserted after row id" in problem.message


def test_verify_cli_exit_codes_and_json_last_line(studio: Studio, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setenv("STUDIO_DATA_DIR", str(studio.settings.data_dir))
    monkeypatch.setenv("DATABASE_URL", studio.settings.database_url)
    append(studio, 3, Actor("=cmd|' /C calc'!A0", "pc"))
    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "intact: 3 row(s)" in out[0] and json.loads(out[-1])["ok"] is True
    assert main(["audit", "head"]) == 0
    head = json.loads(capsys.readouterr().out)
    assert Anchor.parse(head["expect"]) == chain_head(studio)

    assert main(["audit", "export", "--csv", str(tmp_path / "a.csv"), "--action", "settings"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 3
    exported = (tmp_path / "a.csv").read_bytes().decode("utf-8")
    assert exported == csv_text(studio, action="settings") and "'=cmd" in exported  # no formula for a spreadsheet
    assert main(["audit", "list", "--actor", "nobody"]) == 0 and capsys.readouterr().out == ""

    drop_triggers(studio)
    raw(studio, "UPDATE audit_log SET details = '{}' WHERE seq = 2")
    assert main(["audit", "verify", "--json"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and json.loads(out[-1])["problems"][0]["seq"] == 2


def test_secret_named_details_and_url_passwords_are_redacted(any_studio: Studio) -> None:
    with any_studio.transaction() as session:
        log(session, ANA, "output_add", "output 1", None, url="mqtt://line:hunter2-pw@broker:1883", password="pw-x1",
            nested={"webhook_secret": "s3cr3t-hook"}, name="mes")
    [row] = audit_log(any_studio)
    assert row.details == {"url": f"mqtt://line:{REDACTED}@broker:1883", "password": REDACTED,
                           "nested": {"webhook_secret": REDACTED}, "name": "mes"}
    assert verify(any_studio).ok


def _append_in_process(settings: Settings, actor: str, count: int, start: multiprocessing.synchronize.Event) -> None:
    studio = open_studio(settings)
    start.wait(60)
    append(studio, count, Actor(actor, "proc"))
    studio.engine.dispose()


@pytest.mark.slow
def test_two_processes_appending_at_once_keep_one_chain(any_studio: Studio) -> None:
    append(any_studio, 1)
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [context.Process(target=_append_in_process, args=(any_studio.settings, name, 40, start))
               for name in ("left", "right")]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(180)
        assert worker.exitcode == 0
    report = verify(any_studio)
    assert report.ok and report.rows == 81 and report.head.seq == 81
    assert {r.actor for r in audit_log(any_studio, limit=None)} == {"ana", "left", "right"}
