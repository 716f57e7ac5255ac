"""The web view's HTTP side (edge/web_view.py), in-process, with a plain HTTP client: the token on every route,
the add action validated as `library add` validates, and a viewer that stops reading never stalls the listener."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("aiohttp", reason="the web view needs aiohttp (pip install -e '.[web]')")

from edge.bundle import load_bundle  # noqa: E402
from edge.identifier import Identifier  # noqa: E402
from edge.listen import Identification  # noqa: E402
from edge.session import add_shown_spectrum, plot_of  # noqa: E402
from edge.user_library import UserLibrary  # noqa: E402
from edge.web_view import MAX_BODY, QUEUE_SIZE, TOKEN_HEADER, WebView, parse_address  # noqa: E402

ROUTES = [("GET", "/"), ("GET", "/api/answers"), ("GET", "/api/latest"), ("GET", "/api/events"), ("POST", "/api/library")]


@pytest.fixture()
def served(edge_bundle, tmp_path):
    """A started web view with three published answers of a real identifier (user library in tmp_path)."""
    identifier = Identifier(load_bundle(edge_bundle), UserLibrary(tmp_path / "library"))
    listener = SimpleNamespace(identifier=identifier, port_name="/dev/ttyTEST")
    lines: list[str] = []
    view = WebView("127.0.0.1", 0, say=lines.append)
    view.start()
    library = identifier.bundle_library
    for n in (1, 2, 3):
        spectrum = library.spectra[n * 100].astype(np.float32)
        result = Identification(f"2026-12-01T00:00:0{n}.000+00:00", n, identifier.answer(spectrum, spectrum), 1.0, spectrum)
        record = result.record("/dev/ttyTEST", "test", "device")
        view.publish(n, record, plot_of(result), lambda name, result=result: add_shown_spectrum(listener, result, name))
    _wait(lambda: len(view.shown) == 3)
    yield view, identifier, lines
    view.stop()


def _wait(condition, timeout=5.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def _request(view: WebView, method: str, path: str, token: str | None = None, body: bytes | None = None, headers: dict | None = None, timeout=5):
    connection = http.client.HTTPConnection("127.0.0.1", view.port, timeout=timeout)
    headers = dict(headers or {})
    if token is not None:
        headers[TOKEN_HEADER] = token
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    if path.startswith("/api/events") and response.status == 200:
        data = response.read1(65536)  # a stream: the first chunk is enough
    else:
        data = response.read()
    connection.close()
    return response.status, data


def test_parse_address():
    assert parse_address("8765") == ("127.0.0.1", 8765)
    assert parse_address("0.0.0.0:8765") == ("0.0.0.0", 8765)
    with pytest.raises(ValueError, match="expected"):
        parse_address("localhost")


def test_every_route_needs_the_token(served):
    view, _, lines = served
    for method, path in ROUTES:
        for token in (None, "wrong", view.token[:-1]):
            status, data = _request(view, method, path, token=token, body=b"{}" if method == "POST" else None, headers={"Content-Type": "application/json"})
            assert status == 401, (method, path, token)
            assert b"schema" not in data and b"<html" not in data and view.token.encode() not in data  # nothing else
    assert any("401 GET /api/answers" in line for line in lines)  # one log line each, no crash
    # with the token (header or query): the page, the records, the stream
    status, page = _request(view, "GET", f"/?token={view.token}")
    assert status == 200 and b"<svg" in page and b"http" not in page.replace(b"http-equiv", b"")  # no external request
    status, answers = _request(view, "GET", "/api/answers", token=view.token)
    records = json.loads(answers)
    assert status == 200 and [r["seq"] for r in records] == [1, 2, 3] and all(r["schema"] == 5 for r in records)
    status, latest = _request(view, "GET", "/api/latest", token=view.token)
    assert json.loads(latest) == records[-1]
    status, stream = _request(view, "GET", f"/api/events?token={view.token}")
    assert status == 200 and stream.startswith(b"event: status")


def test_add_validates_its_input_like_library_add(served):
    view, identifier, _ = served
    headers = {"Content-Type": "application/json"}

    def add(body: bytes, extra: dict | None = None):
        return _request(view, "POST", "/api/library", token=view.token, body=body, headers={**headers, **(extra or {})})

    assert add(b'{"name": "Quartz?", "n": 2}', {"Content-Type": "text/plain"})[0] == 415  # a form from another site cannot send JSON
    assert add(b"not json")[0] == 400
    assert add(b'{"name": 5, "n": 2}')[0] == 400
    assert add(b'{"name": "  ", "n": 2}')[0] == 400
    status, data = add(json.dumps({"name": "x" * 500, "n": 2}).encode())
    assert status == 400 and "printable characters" in json.loads(data)["message"]  # check_mineral_name's own words
    assert add(json.dumps({"name": "Quartz", "n": 99}).encode())[0] == 404
    assert add(json.dumps({"name": "a" * (MAX_BODY + 10), "n": 2}).encode())[0] == 413
    assert add(b'{"name": "Quartz", "n": 2}', {"Origin": "http://evil.example"})[0] == 403
    assert identifier.user_library is not None and not identifier.user_library.entries  # nothing added so far
    status, data = add(b'{"name": "Field quartz 7", "n": 2}')
    assert status == 200 and json.loads(data)["added"]
    assert [e.mineral for e in UserLibrary(identifier.user_library.folder).entries] == ["Field quartz 7"]  # saved
    status, data = add(b'{"name": "Field quartz 8", "n": 2}')
    assert status == 400 and "already in the library" in json.loads(data)["message"]


def test_a_viewer_that_stops_reading_never_stalls_the_listener(served):
    view, _, lines = served
    # a viewer that connects and never reads: its socket buffers fill, then its queue
    dead = socket.socket()
    dead.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window stays small
    dead.connect(("127.0.0.1", view.port))
    dead.sendall(f"GET /api/events?token={view.token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    live = http.client.HTTPConnection("127.0.0.1", view.port, timeout=10)
    live.request("GET", f"/api/events?token={view.token}")
    stream = live.getresponse()
    _wait(lambda: len(view._viewers) == 2)
    record = view.shown[-1].record
    big = {"measured": [0.5] * 20000}  # 100 kB events fill the dead viewer's socket buffers quickly
    total = QUEUE_SIZE * 6
    seen: list[int] = []

    def viewer() -> None:  # the viewer that reads
        buffer = b""
        while len(seen) < total:
            chunk = stream.read1(1 << 20)
            if not chunk:
                return
            *events, buffer = (buffer + chunk).split(b"\n\n")
            seen.extend(json.loads(e.split(b"data: ", 1)[1])["n"] for e in events if e.startswith(b"event: answer"))

    def listener() -> None:  # what the listener's thread does per answer, at 200 answers a second (a device: a few)
        for n in range(100, 100 + total):
            view.publish(n, record, big, lambda name: "not added")
            time.sleep(0.005)

    reading = threading.Thread(target=viewer)
    reading.start()
    publishing = threading.Thread(target=listener)
    publishing.start()
    publishing.join(30)
    assert not publishing.is_alive()  # done although one viewer never read a byte: nothing waited on it
    reading.join(30)
    assert view.dropped_viewers == 1 and any("fell" in line and "dropped" in line for line in lines)
    assert seen == list(range(100, 100 + total))  # the viewer that reads got every answer, in order
    dead.close()
    live.close()
