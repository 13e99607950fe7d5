"""The explorer against an attacker (issue 29, findings 2 and 4): Host and Origin checks, bounded bodies, uploads,
caches and jobs, 400 for bad parameters, and names from files shown as text in a real headless Chromium.

The probe's reproducers: a direction file whose name is HTML, uploaded cross-origin (refused) and same-origin (shown
as text, no script runs); DNS rebinding (a foreign Host header); a 300 MiB body; an npz that inflates 1000x; ``mix
0-9999999``; ``cutoff: 1e400``; ``directions`` as a list; projection jobs without end.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
import urllib.request
import zipfile

import numpy as np
import pytest
from test_explore import CHROMEDRIVER, CHROMIUM, TestClient, WebDriver, console_script, free_port, wait_for
from test_latent import one_thread, tiny_generator  # noqa: F401

from sgtrain.io import save_network
from sgtrain.latent.explore import LIMITS, Explorer, create_app

HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1">.npz'


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


@pytest.fixture()
def client(G):
    ex = Explorer({"sg2": G}, w_avg_samples=100)
    return TestClient(create_app(ex, hosts=("testserver",))), ex


def _direction_npz(w_dim: int = 32) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, direction=np.random.default_rng(0).standard_normal(w_dim).astype(np.float32))
    return buf.getvalue()


def test_foreign_host_is_refused_dns_rebinding(client):
    c, _ = client
    assert c.get("/api/networks").status_code == 200
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example"):
        r = c.get("/api/networks", headers={"Host": host})
        assert r.status_code == 403 and "not this explorer's address" in r.json()["error"], host
    assert c.get("/api/networks", headers={"Host": "localhost:8000"}).status_code == 200
    assert c.get("/api/networks", headers={"Host": "[::1]:8000"}).status_code == 200


def test_state_changing_requests_from_another_origin_are_refused(client):
    c, ex = client
    before = len(ex.nets["sg2"].directions)
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        r = c.post("/api/directions", files={"file": (HOSTILE, _direction_npz())}, data={"net": "sg2"},
                   headers=headers)
        assert r.status_code == 403, (headers, r.text)
        r = c.post("/api/render", json={"net": "sg2", "a": {"seed": 0}}, headers=headers)
        assert r.status_code == 403, headers
    assert len(ex.nets["sg2"].directions) == before  # nothing planted
    r = c.post("/api/render", json={"net": "sg2", "a": {"seed": 0}}, headers={"Origin": "http://testserver"})
    assert r.status_code == 200


def test_bad_parameters_answer_400_not_500(client):
    c, _ = client
    cases = ['{"net": "sg2", "a": {"seed": 0}, "cutoff": 1e400}',
             '{"net": "sg2", "a": {"seed": 0}, "psi": 1e400}',
             '{"net": "sg2", "a": {"seed": 0}, "directions": ["x", 1]}',
             '{"net": "sg2", "a": {"seed": 0}, "translate": "ab"}',
             '{"net": "sg2", "a": {"seed": 0}, "b": {"seed": 1}, "mix": "0-9999999"}',
             '["not", "an", "object"]']
    for body in cases:
        r = c.post("/api/render", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (body, r.status_code, r.text[:300])
        assert len(r.content) < 2000 and "error" in r.json(), body
    r = c.post("/api/grid", content='{"net": "sg2", "start": 0, "count": 1e400}',
               headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_bodies_and_uploads_are_bounded(client, tmp_path):
    c, ex = client
    big = b'{"net": "sg2", "pad": "' + b"x" * (LIMITS["json_body"] + 10) + b'"}'
    r = c.post("/api/render", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    # an npz bomb: 96 MiB of zeros in a ~100 KB file
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("direction.npy", "w", force_zip64=True) as f:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                          "shape": (24 * 2**20,)})
            f.write(header.getvalue())
            chunk = b"\0" * 2**20
            for _ in range(96):
                f.write(chunk)
    bomb = buf.getvalue()
    assert len(bomb) < 1 * 2**20
    before = len(ex.nets["sg2"].directions)
    r = c.post("/api/directions", files={"file": ("bomb.npz", bomb)}, data={"net": "sg2"})
    assert r.status_code == 400 and "decompressed" in r.json()["error"], r.text
    assert len(ex.nets["sg2"].directions) == before


def test_result_cache_and_projection_jobs_are_bounded(client, G, tmp_path, monkeypatch):
    c, ex = client
    monkeypatch.setitem(LIMITS, "results_bytes", 64 * 1024)
    for seed in range(40):
        assert c.post("/api/grid", json={"net": "sg2", "start": seed * 16, "count": 16}).status_code == 200
    assert ex._results_bytes <= 64 * 1024 and len(ex._results) < 40
    from sgtrain.latent import render_ws, seeds_to_ws
    from sgtrain.latent.explore import png_bytes

    target = png_bytes(render_ws(G, seeds_to_ws(G, [3]))[0].numpy())
    ids = []
    for _ in range(LIMITS["running_jobs"]):
        r = c.post("/api/project", files={"file": ("t.png", target)},
                   data={"net": "sg2", "steps": str(LIMITS["steps"]), "loss": "mse"})
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    r = c.post("/api/project", files={"file": ("t.png", target)}, data={"net": "sg2", "steps": "5", "loss": "mse"})
    assert r.status_code == 400 and "projections are running" in r.json()["error"]
    for jid in ids:
        c.post(f"/api/jobs/{jid}/cancel")
    wait_for(lambda: all(ex.jobs[j].state != "running" for j in ids), 60, "the cancelled jobs")


@pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                    reason=f"needs Chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER})")
def test_hostile_file_name_cannot_script_the_page_in_chromium(tmp_path, G):
    """In Chromium: a page of another origin (http://localhost:PORT, the server bound as 127.0.0.1) posts a direction
    file named as HTML to http://127.0.0.1:PORT: refused, nothing planted. The same file uploaded from the page's own
    origin is shown as text in the direction list and runs no script."""
    save_network(tmp_path / "tiny", G_ema=G)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(console_script("sgtrain-explore") + [
        "--network", str(tmp_path / "tiny.safetensors"), "--port", str(port), "--device", "cpu",
        "--w-avg-samples", "100"], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    browser = None
    upload_js = """
        const [target, name, b64, done] = arguments;
        const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
        const fd = new FormData();
        fd.append("file", new File([bytes], name));
        fd.append("net", "tiny");
        fetch(target + "api/directions", {method: "POST", body: fd, mode: "no-cors"})
          .then((r) => { document.body.dataset.upload = String(r.status); })
          .catch((e) => { document.body.dataset.upload = "failed"; });
    """
    payload = __import__("base64").b64encode(_direction_npz()).decode()

    def directions() -> list[str]:
        with urllib.request.urlopen(url + "api/networks", timeout=5) as r:
            return [d["name"] for d in json.loads(r.read())[0]["directions"]]

    try:
        wait_for(lambda: server.poll() is not None or urllib.request.urlopen(url + "api/networks", timeout=2).status
                 == 200, 60, "sgtrain-explore did not start")
        assert server.poll() is None, (tmp_path / "server.log").read_text()
        browser = WebDriver(str(tmp_path / "profile"))
        # another origin: the same server under the name localhost (an allowed Host, another origin)
        browser.s("POST", "/url", {"url": f"http://localhost:{port}/"})
        browser.js(upload_js, url, HOSTILE, payload, None)
        wait_for(lambda: browser.js("return document.body.dataset.upload"), 30, "the cross-origin upload")
        time.sleep(0.5)
        assert not [n for n in directions() if "onerror" in n]  # refused: nothing planted
        # the page's own origin: accepted, and shown as text
        browser.s("POST", "/url", {"url": url})
        browser.js(upload_js, url, HOSTILE, payload, None)
        wait_for(lambda: browser.js("return document.body.dataset.upload") == "200", 30, "the same-origin upload")
        planted = [n for n in directions() if "onerror" in n]  # (Chromium writes '"' as %22 in the part's name)
        assert planted and planted[0].startswith("<img src=x onerror="), directions()
        browser.s("POST", "/url", {"url": url})  # reload: the page lists the planted name
        # issue 30: until the first image arrives the page says it is loading (no broken image)
        assert browser.js("return !!document.getElementById('mainLoading') || "
                          "!!document.getElementById('main').getAttribute('src')")
        wait_for(lambda: browser.js("return window.sg && sg.renders > 0"), 60, "the first render")
        assert browser.js("return document.getElementById('mainLoading')") is None
        labels = browser.js("return [...document.querySelectorAll('#dirs label')].map((l) => l.textContent)")
        assert planted[0] in labels, labels  # the name, as text
        assert browser.js("return document.querySelectorAll('#dirs img').length") == 0
        assert browser.js("return document.body.dataset.pwned") is None
    finally:
        if browser is not None:
            browser.close()
        server.terminate()
        server.wait(30)
        log.close()
