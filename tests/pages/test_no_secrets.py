"""No secret leaks: a password (typed at sign-in, used to sign, and a wrong one), an API token and a
webhook key, all set during the test, appear in no log record (caplog, every logger at DEBUG), no log or
text file of the studio's data folder, no CLI output, no element of any page, no audit row, and no CSV
export (audit trail, inspections)."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.analytics.export import csv_chunks
from core.analytics.filters import AnalyticsFilter
from core.api.tokens import TokenChecker, create_token
from core.audit import SYSTEM, audit_log
from core.audit_trail import csv_text
from core.auth import accounts
from core.line.outputs import add_output, publish_test
from core.studio import Studio
from core.tool_settings import change_settings
from core.tools import create_tool
from tests.pages.test_auth_pages import PAGE_FILES, sign_in
from tests.pages.test_pages import APP, ROOT, empty_studio  # noqa: F401 - fixture

PASSWORD = "Zebra-Secret-Password-71"
WRONG = "Wrong-Secret-Password-93"
WEBHOOK_KEY = "hook-key-Secret-5521"
pytestmark = pytest.mark.signed_in_as(None)


def shown(at: AppTest) -> str:
    """Every element of the page (main and sidebar), as its protobuf text, without the password inputs'
    own values (what the browser holds in the field being typed into)."""
    texts = []
    for node in at.main, at.sidebar:
        for element in node:
            proto = str(getattr(element, "proto", element))
            texts.append(proto)
    return "\n".join(texts).replace(f'value: "{PASSWORD}"', "").replace(f'value: "{WRONG}"', "")


def test_no_password_token_or_webhook_key_anywhere(empty_studio: Studio, caplog: pytest.LogCaptureFixture,
                                                    tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    studio = empty_studio
    admin = accounts.create_user(studio, SYSTEM, "root", PASSWORD, "admin", "Rita Root")
    actor = accounts.actor_for(admin, device="test", via="page")
    create_tool(studio, "cells", "good,defective", actor=actor)
    _, token = create_token(studio, "mes", "inspect", actor)
    assert TokenChecker(studio).check(token, "inspect").account_id == admin.id
    add_output(studio, "line-1", "mes", "webhook", "http://127.0.0.1:9/hook", secret=WEBHOOK_KEY, actor=actor)
    publish_test(studio, "line-1", "mes", timeout=1.0, actor=actor)  # nothing listens: a logged failure
    change_settings(studio, "cells", actor, {"policy": "classifier only"}, PASSWORD)  # signed with the password
    with pytest.raises(Exception, match="Not signed"):
        change_settings(studio, "cells", actor, {"policy": "cross-check"}, WRONG)

    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    sign_in(at, "root", WRONG)  # refused, audited
    sign_in(at, "root", PASSWORD)
    pages = []
    for url_path in [*PAGE_FILES, "fleet"]:
        at.switch_page(f"pages/{PAGE_FILES.get(url_path, url_path)}.py").run()
        assert not at.exception, (url_path, [e.value for e in at.exception])
        pages.append(shown(at))

    env = {"STUDIO_DATA_DIR": str(studio.settings.data_dir), "STUDIO_USER": "root", "STUDIO_PASSWORD": PASSWORD,
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    cli = [subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
           for args in (["api-tokens", "list"], ["outputs", "list", "--station", "line-1"], ["audit", "list"],
                        ["tools", "set", "cells", "policy=anomaly only"])]
    assert all(done.returncode == 0 for done in cli), [done.stderr for done in cli]

    places = {
        "log records": "\n".join(f"{r.getMessage()} {r.args} {r.exc_text}" for r in caplog.records),
        "files of the data folder": "\n".join(p.read_text(errors="replace") for p in studio.settings.data_dir.rglob("*")
                                              if p.is_file() and p.suffix in {".log", ".txt", ".json", ".csv"}),
        "CLI output": "\n".join(done.stdout + done.stderr for done in cli),
        "pages": "\n".join(pages),
        "audit trail": "\n".join(f"{e.action} {e.actor} {e.target} {e.details}" for e in audit_log(studio, limit=None)),
        "audit CSV": csv_text(studio),
        "inspections CSV": "".join(csv_chunks(studio, AnalyticsFilter("cells", date(2020, 1, 1), date.today()))),
    }
    assert "login_failed" in places["audit trail"] and "sign_refused" in places["audit trail"]
    assert "Rita Root (root), approved" in places["audit CSV"]  # the signature is in the export
    for secret in (PASSWORD, WRONG, token, token[12:], WEBHOOK_KEY):
        leaks = [where for where, text in places.items() if secret in text]
        assert leaks == [], f"a secret ({secret[:4]}...) is in: {leaks}"
