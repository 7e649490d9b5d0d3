"""Outbound requests (webhooks): public addresses only, checked once and connected to as checked."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from agents_app import outbound


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/hook",  # a name that resolves to loopback
        "http://127.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
        "http://2130706433/hook",  # 127.0.0.1 as one decimal number
        "http://0177.0.0.1/hook",  # octal
        "http://0x7f.1/hook",  # hex, short form
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",  # a cloud's metadata service
        "http://[fe80::1]/hook",
        "ftp://example.com/hook",
        "http:///no-host",
    ],
)
def test_what_is_not_public_is_refused(url: str) -> None:
    with pytest.raises(outbound.Refused):
        outbound.resolve(url, allow_private=False)
    with pytest.raises(outbound.Refused):
        outbound.post(url, b"{}", headers={}, timeout=1, allow_private=False)


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers by path: /redirect (302 to /landed), /big (1 MB), /slow (after 2 s), else 200."""

    hits: list[tuple[str, str | None]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Recorder.hits.append((self.path, self.headers.get("Host")))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/landed")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/slow":
            time.sleep(2)
        body = b"x" * (1024 * 1024) if self.path == "/big" else b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    Recorder.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_a_redirect_is_an_answer_not_followed(server: int) -> None:
    answer = outbound.post(f"http://127.0.0.1:{server}/redirect", b"{}", headers={}, timeout=5, allow_private=True)
    assert answer.status == 302
    assert [path for path, _ in Recorder.hits] == ["/redirect"]  # /landed never asked


def test_the_host_header_is_the_urls_while_the_checked_address_is_dialled(server: int) -> None:
    answer = outbound.post(f"http://localhost:{server}/hook", b"{}", headers={}, timeout=5, allow_private=True)
    assert (answer.status, answer.body) == (200, b"ok")
    assert Recorder.hits == [("/hook", f"localhost:{server}")]
    target = outbound.resolve(f"http://localhost:{server}/hook?a=1", allow_private=True)
    assert (target.host, target.port, target.path) == ("localhost", server, "/hook?a=1")
    assert target.address in ("127.0.0.1", "::1")


def test_an_answer_is_read_up_to_a_limit(server: int) -> None:
    answer = outbound.post(f"http://127.0.0.1:{server}/big", b"{}", headers={}, timeout=5, allow_private=True)
    assert answer.status == 200 and len(answer.body) == outbound.MAX_ANSWER_BYTES


def test_a_peer_that_does_not_answer_in_time_is_an_os_error(server: int) -> None:
    with pytest.raises(OSError):
        outbound.post(f"http://127.0.0.1:{server}/slow", b"{}", headers={}, timeout=0.3, allow_private=True)


def test_the_setting_decides_by_default(settings) -> None:
    settings.AK_RUN = {**settings.AK_RUN, "WEBHOOK_ALLOW_PRIVATE": False}
    assert outbound.refusal("http://127.0.0.1/hook") is not None
    settings.AK_RUN = {**settings.AK_RUN, "WEBHOOK_ALLOW_PRIVATE": True}
    assert outbound.refusal("http://127.0.0.1/hook") is None
