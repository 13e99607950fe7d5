"""sgtrain-metrics download: a local HTTP server on 127.0.0.1 serves a stand-in file (never the real internet)."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading

import pytest

from sgtrain.metrics.download import SHA256, DownloadError, download_detector

PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)  # more than one read chunk
GOOD = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path.endswith("/missing.pkl"):
            self.send_error(404)
            return
        body = PAYLOAD
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.endswith("/partial.pkl"):
            self.wfile.write(body[: len(body) // 2])  # the connection closes early
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_verified(tmp_path, server):
    path = download_detector("inception", tmp_path / "d", url=f"{server}/m/inception-2015-12-05.pkl", sha256=GOOD)
    assert path == str(tmp_path / "d" / "inception-2015-12-05.pkl")
    assert open(path, "rb").read() == PAYLOAD


@pytest.mark.parametrize("case, reason", [("hash", "differs"), ("partial", "partial"), ("404", "HTTP 404"),
                                          ("offline", "no network")])
def test_download_failures_leave_nothing(tmp_path, server, case, reason):
    url = {"hash": f"{server}/vgg16.pkl", "partial": f"{server}/partial.pkl", "404": f"{server}/missing.pkl"}
    if case == "offline":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there
        url["offline"] = f"http://127.0.0.1:{port}/vgg16.pkl"
    sha = "0" * 64 if case == "hash" else GOOD
    with pytest.raises(DownloadError, match=reason):
        download_detector("vgg16", tmp_path, url=url[case], sha256=sha, timeout=10)
    assert list(tmp_path.iterdir()) == []


def test_no_recorded_hash_refuses(tmp_path):
    assert all(v is None or len(v) == 64 for v in SHA256.values())
    url = next(u for u, h in SHA256.items() if h is None)
    with pytest.raises(DownloadError, match="no recorded sha256"):
        download_detector("inception", tmp_path, url=url)
    with pytest.raises(DownloadError, match="only https"):
        download_detector("inception", tmp_path, url="http://example.com/x.pkl", sha256=GOOD)
    assert list(tmp_path.iterdir()) == []


def test_cli(tmp_path, server):
    env = dict(os.environ, SGTRAIN_DETECTOR_URL=f"{server}/inception-2015-12-05.pkl", SGTRAIN_DETECTOR_SHA256=GOOD)
    cmd = [sys.executable, "-m", "sgtrain.cli.metrics", "download", "inception", "--dir", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "inception-2015-12-05.pkl").read_bytes() == PAYLOAD
    env["SGTRAIN_DETECTOR_SHA256"] = "f" * 64
    r = subprocess.run([*cmd[:-1], str(tmp_path / "b")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "differs" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert list((tmp_path / "b").iterdir()) == []
