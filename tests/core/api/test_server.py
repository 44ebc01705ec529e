"""The REST API on a real uvicorn server (loopback), called with httpx: inspection answers equal the
engine's own, recording, reads, every refusal with its message, metrics and the OpenAPI docs."""

from __future__ import annotations

import http.client
import io
import re
import struct
import zlib

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from core.api.tokens import revoke_token
from core.audit import SYSTEM
from core.inspect.service import predict_image
from core.studio import Studio
from storage.tables import Inspection
from tests.core.api.conftest import ADMIN, CAP, ApiServer, bearer, create_token, defective_image, good_image

pytestmark = pytest.mark.slow  # trains a tool and runs a real server


def inspections(studio: Studio) -> int:
    with studio.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Inspection)))


def without_ms(result: dict) -> dict:
    assert isinstance(result["ms"], float)
    return {k: v for k, v in result.items() if k != "ms"}


def inspect(server: ApiServer, token: str, data: bytes, content_type: str = "image/png",
            **params: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/tools/cells/inspect", content=data, params=params, timeout=60,
                      headers={**bearer(token), "Content-Type": content_type})


@pytest.mark.parametrize("image", [good_image, defective_image])
def test_inspect_answers_what_predict_image_answers(server: ApiServer, api_studio: Studio, tokens: dict[str, str],
                                                    image) -> None:  # type: ignore[no-untyped-def]
    data, before = image(), inspections(api_studio)
    expected = predict_image(api_studio, "cells", "upload", data, record=False, actor=SYSTEM).as_dict()

    raw = inspect(server, tokens["inspect"], data, record="false")
    multipart = httpx.post(f"{server.url}/v1/tools/cells/inspect", params={"record": "false"}, timeout=60,
                           files={"file": ("cell.png", data, "image/png")}, headers=bearer(tokens["inspect"]))

    assert raw.status_code == 200, raw.text
    assert without_ms(raw.json()) == without_ms(expected)
    assert multipart.status_code == 200, multipart.text
    assert without_ms(multipart.json()) == {**without_ms(expected), "path": "cell.png"}
    assert inspections(api_studio) == before  # record=false records nothing


def test_record_true_makes_an_inspection_readable_by_id(server: ApiServer, api_studio: Studio,
                                                         tokens: dict[str, str]) -> None:
    before = inspections(api_studio)
    answer = inspect(server, tokens["admin"], defective_image(), station="api-line").json()  # record defaults to true
    assert isinstance(answer["inspection_id"], int)
    assert inspections(api_studio) == before + 1

    stored = httpx.get(f"{server.url}/v1/inspections/{answer['inspection_id']}", headers=bearer(tokens["read"]))
    assert stored.status_code == 200
    body = stored.json()
    assert (body["tool"], body["station"], body["decision"], body["label"]) == (
        "cells", "api-line", answer["decision"], answer["label"])
    assert body["score"] == pytest.approx(answer["score"], abs=1e-6)
    assert body["models"] == answer["models"]


def test_tools_are_listed_and_described(server: ApiServer, tokens: dict[str, str]) -> None:
    listed = httpx.get(f"{server.url}/v1/tools", headers=bearer(tokens["read"]))
    assert listed.status_code == 200
    assert [t["name"] for t in listed.json()] == ["cells"]
    shown = httpx.get(f"{server.url}/v1/tools/cells", headers=bearer(tokens["read"])).json()
    assert shown["name"] == "cells" and "classifier" in shown["deciding"]


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels (a decompression bomb's header) and holds no pixels."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="GIF")
    return out.getvalue()


def test_every_refusal_has_its_status_and_message_and_records_nothing(server: ApiServer, api_studio: Studio,
                                                                      tokens: dict[str, str]) -> None:
    url, good, before = f"{server.url}/v1/tools/cells/inspect", good_image(), inspections(api_studio)
    revoked_id = create_token(api_studio, "to-revoke", "inspect", ADMIN)
    assert inspect(server, revoked_id[1], good, record="false").status_code == 200
    revoke_token(api_studio, revoked_id[0].id, ADMIN)
    cases = [
        (httpx.post(url, content=good, headers={"Content-Type": "image/png"}), 401, "missing API token"),
        (inspect(server, "vis_not-a-token", good), 401, "invalid API token"),
        (inspect(server, revoked_id[1], good), 401, "revoked"),
        (inspect(server, tokens["read"], good), 403, "lacks the 'inspect' scope"),
        (httpx.post(f"{server.url}/v1/tools/nope/inspect", content=good, headers={
            **bearer(tokens["inspect"]), "Content-Type": "image/png"}), 404, "no tool named 'nope'"),
        (httpx.get(f"{server.url}/v1/inspections/999999", headers=bearer(tokens["read"])), 404, "no inspection"),
        (inspect(server, tokens["inspect"], b"hello", "text/plain"), 415, "unsupported content type text/plain"),
        (inspect(server, tokens["inspect"], b"just some text, not a picture"), 415, "not an image"),
        (inspect(server, tokens["inspect"], gif(), "application/octet-stream"), 415, "unsupported format GIF"),
        (inspect(server, tokens["inspect"], png_header(50_000, 50_000)), 422, "image too large"),
        (inspect(server, tokens["inspect"], good[: len(good) // 2]), 422, "damaged or truncated"),
        (inspect(server, tokens["inspect"], b""), 422, "empty file"),
        (inspect(server, tokens["inspect"], b"x" * (CAP + 1)), 413, "upload too large"),
        (httpx.post(url, files={"other": ("a.png", good)}, headers=bearer(tokens["inspect"])), 422, "'file' field"),
        (inspect(server, tokens["inspect"], good, roi="sideways"), 422, "roi"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, (status, message, response.text)
        assert message in str(response.json()["detail"]), response.text
        assert response.headers["content-type"] == "application/json"
    assert cases[0][0].headers["www-authenticate"] == "Bearer"
    assert inspections(api_studio) == before
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "database": "ok"}


def raw_post(server: ApiServer, token: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    """A POST written by hand (http.client), so a body can be announced larger than it is, or chunked."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.putrequest("POST", "/v1/tools/cells/inspect?record=true")
        for name, value in {**bearer(token), "Content-Type": "image/png", **headers}.items():
            connection.putheader(name, value)
        connection.endheaders()
        connection.send(body)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_oversized_uploads_are_refused_by_length_and_by_counting(server: ApiServer, api_studio: Studio,
                                                                 tokens: dict[str, str]) -> None:
    before = inspections(api_studio)
    # a Content-Length over the cap is refused before any of the body is sent
    status, text = raw_post(server, tokens["inspect"], {"Content-Length": str(50 * 2**30)}, b"")
    assert (status, "upload too large" in text) == (413, True)
    # no length (chunked): the server counts while reading and stops past the cap
    chunk = b"\0" * 32 * 1024
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(CAP // len(chunk) + 1))
    status, text = raw_post(server, tokens["inspect"], {"Transfer-Encoding": "chunked"}, chunked)
    assert (status, "upload too large" in text) == (413, True)
    assert inspections(api_studio) == before
    assert inspect(server, tokens["inspect"], good_image(), record="false").status_code == 200  # still serving


def test_metrics_count_requests_latency_and_decisions(server: ApiServer, tokens: dict[str, str]) -> None:
    assert inspect(server, tokens["inspect"], good_image(), record="false").status_code == 200
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    text = httpx.get(f"{server.url}/metrics", headers=bearer(tokens["read"])).text
    assert ('studio_api_requests_total{method="POST",route="/v1/tools/{name}/inspect",status="200"}' in text)
    assert 'studio_api_request_seconds_bucket{le="0.5",route="/v1/tools/{name}/inspect"}' in text
    assert 'studio_api_decisions_total{decision="pass",tool="cells"}' in text


def test_openapi_and_docs_are_served(server: ApiServer) -> None:
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "cdn" not in docs.text.lower(), "the docs page must load nothing from the internet (offline PCs)"
    script = re.search(r'src="([^"]+swagger-ui-bundle[^"]*)"', docs.text)
    assert script and httpx.get(f"{server.url}{script.group(1)}").status_code == 200
    schema = httpx.get(f"{server.url}/openapi.json").json()
    operation = schema["paths"]["/v1/tools/{name}/inspect"]["post"]
    assert {"image/png", "multipart/form-data"} <= set(operation["requestBody"]["content"])
    assert {"/v1/tools", "/v1/tools/{name}", "/v1/inspections/{inspection_id}", "/healthz", "/metrics"} <= set(
        schema["paths"])


def test_the_event_loop_serves_while_a_model_judges(server: ApiServer, tokens: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An inspection held inside the engine does not stop /healthz (inference runs in a worker thread)."""
    import threading

    from core.api import routes

    entered, release, real = threading.Event(), threading.Event(), routes.predict_image

    def held(*args, **kwargs):  # type: ignore[no-untyped-def]
        entered.set()
        assert release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(routes, "predict_image", held)
    answers: list[httpx.Response] = []
    client = threading.Thread(target=lambda: answers.append(
        inspect(server, tokens["inspect"], good_image(), record="false")))
    client.start()
    try:
        assert entered.wait(60)
        assert httpx.get(f"{server.url}/healthz", timeout=20).status_code == 200  # while the inspection is held
    finally:
        release.set()
        client.join(60)
    assert answers[0].status_code == 200


def test_a_token_acts_as_its_account_and_the_matrix_decides(server: ApiServer, api_studio: Studio) -> None:
    """A token acts as the account that made it (role read at each request, via "api"): when that account
    becomes a viewer, inspecting is refused (403) and audited; a disabled account's token is refused (401)."""
    from core.audit import SYSTEM, audit_log
    from core.auth import accounts

    account = accounts.create_user(api_studio, SYSTEM, "mes-admin", "mes-password-1", "admin")
    _, token = create_token(api_studio, "mes-line", "inspect", accounts.actor_for(account, device="pc", via="page"))
    before = inspections(api_studio)
    assert inspect(server, token, good_image()).status_code == 200
    assert inspections(api_studio) == before + 1
    accounts.set_role(api_studio, SYSTEM, "mes-admin", "viewer")
    refused = inspect(server, token, good_image())
    assert refused.status_code == 403 and "may not inspect" in refused.json()["detail"]
    assert inspections(api_studio) == before + 1
    denied = next(e for e in audit_log(api_studio) if e.action == "denied")
    assert (denied.actor, denied.details["via"], denied.details["permission"], denied.details["role"]) == \
        ("mes-admin", "api", "inspect", "viewer")
    assert denied.device.startswith("api ")
    accounts.disable(api_studio, SYSTEM, "mes-admin")
    assert inspect(server, token, good_image()).status_code == 401
