"""The studio answers only its own page: each refusal over real HTTP, and none leaks the body."""

from __future__ import annotations

import http.client
import json
import threading

import pytest
from _studio_client import page_client

from zenml_quant.studio import Studio, StudioServer, create_app
from zenml_quant.studio.guard import MAX_BODY_BYTES
from zenml_quant.studio.jobs import JobRunner

MARKER = "zq-echo-marker"


@pytest.fixture(scope="module")
def server(digits, digits_model):
    with StudioServer(Studio(digits_model, digits), baseline=False) as running:
        yield running


def _request(server, method, path, *, host=None, body=None, headers=None):
    """Send one request with exactly these headers; returns (status, parsed JSON or text)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host or f"127.0.0.1:{server.port}")
        payload = body.encode() if isinstance(body, str) else body
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if payload is not None:
            connection.putheader("Content-Length", str(len(payload)))
        connection.endheaders(payload)
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


def _post(server, path, body="{}", **headers):
    base = {"Content-Type": "application/json", "X-Studio-Token": server.app.state.token}
    base.update({k.replace("_", "-"): v for k, v in headers.items() if v is not None})
    for name in [k for k, v in headers.items() if v is None]:
        base.pop(name.replace("_", "-"), None)
    return _request(server, "POST", path, body=body, headers=base)


def test_the_page_carries_the_token_and_its_own_requests_pass(server):
    status, page = _request(server, "GET", "/")
    assert status == 200 and server.app.state.token in page
    status, _ = _request(server, "GET", "/", host=f"localhost:{server.port}")
    assert status == 200
    status, body = _post(server, "/api/layers", '{"plan": []}', Origin=server.url.rstrip("/"))
    assert status == 200 and body["layers"]


@pytest.mark.parametrize(
    "host",
    ["attacker.example", "attacker.example:{port}", "127.0.0.1:1", "localhost", "127.0.0.1.nip.io"],
)
def test_a_foreign_host_is_refused_dns_rebinding(server, host):
    status, body = _request(server, "GET", "/api/state", host=host.format(port=server.port))
    assert status == 421 and "open the address the studio printed" in body["error"]
    status, _ = _request(server, "GET", "/", host=host.format(port=server.port))
    assert status == 421


def test_a_post_without_the_right_token_changes_nothing(server):
    before = _request(server, "GET", "/api/state")[1]
    for token in (None, "", "wrong-token", server.app.state.token + "x"):
        status, body = _post(server, "/api/sensitivity", X_Studio_Token=token)
        assert status == 403 and "studio token" in body["error"]
    after = _request(server, "GET", "/api/state")[1]
    assert after["active_job"] is None and after["history"] == before["history"]
    assert _request(server, "GET", "/api/jobs/0")[0] == 400  # no job was ever created


def test_cross_origin_and_non_json_posts_are_refused_even_with_the_token(server):
    # The form/beacon CSRF: text/plain is a "simple" request a foreign page may send.
    status, body = _post(server, "/api/sensitivity", Content_Type="text/plain")
    assert status == 415 and "JSON only" in body["error"]
    status, _ = _post(server, "/api/sensitivity", Content_Type=None)
    assert status == 415
    for origin in ("http://attacker.example", f"http://localhost:{server.port + 1}", "null"):
        status, body = _post(server, "/api/sensitivity", Origin=origin)
        assert status == 403 and "Cross-origin" in body["error"]
    status, body = _post(server, "/api/sensitivity", Sec_Fetch_Site="same-site")
    assert status == 403 and "Cross-site" in body["error"]
    status, _ = _request(server, "GET", "/api/state", headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    # Following a link to the page itself is fine; only the API is same-origin only.
    status, _ = _request(server, "GET", "/", headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 200
    assert _request(server, "GET", "/api/state")[1]["active_job"] is None


def test_an_oversize_body_gets_413_and_is_not_echoed(server):
    big = json.dumps({"plan": [], "label": MARKER * (MAX_BODY_BYTES // len(MARKER) + 1)})
    status, body = _post(server, "/api/evaluate", big)
    assert status == 413 and MARKER not in json.dumps(body)
    # A body that fits but is invalid is refused by its schema, without repeating it either.
    status, body = _post(server, "/api/evaluate", json.dumps({"plan": [], MARKER: MARKER * 100}))
    assert status == 422 and MARKER in body["error"]  # the field's name, once
    assert body["error"].count(MARKER) == 1
    status, body = _post(server, "/api/evaluate", json.dumps({"plan": [], "label": MARKER * 30}))
    assert status == 422 and MARKER not in body["error"]


def test_a_chunked_oversize_body_is_refused_too(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    chunk = b"x" * 65_536
    try:
        connection.putrequest("POST", "/api/evaluate", skip_host=True)
        connection.putheader("Host", f"127.0.0.1:{server.port}")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("X-Studio-Token", server.app.state.token)
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
            connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        assert response.status == 413 and b"x" * 100 not in response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8"])
def test_a_bad_queue_bound_is_refused(bad):
    from zenml_quant.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="max_pending must be an int >= 1"):
        JobRunner(max_pending=bad)


def test_a_full_job_queue_answers_429(digits, digits_model):
    release = threading.Event()
    runner = JobRunner(max_pending=2)
    app = create_app(Studio(digits_model, digits), runner=runner, baseline=False)
    try:
        runner.submit("blocker", lambda progress: release.wait(60))
        client = page_client(app)
        first = client.post("/api/evaluate", json={"plan": []})
        assert first.status_code == 200 and first.json()["status"] == "queued"
        full = client.post("/api/evaluate", json={"plan": []})
        assert full.status_code == 429 and "limit is 2" in full.json()["error"]
        assert client.post(f"/api/jobs/{first.json()['id']}/cancel", json={}).status_code == 200
        again = client.post("/api/sensitivity", json={})  # a cancelled job frees its place
        assert again.status_code == 200
        runner.close()  # closing the studio cancels what is still queued
        assert runner.get(again.json()["id"]).status == "cancelled"
    finally:
        release.set()
        runner.close()
