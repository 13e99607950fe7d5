"""sgtrain-explore: capabilities and render controls, the Explorer API through FastAPI's test client, and the page
itself in a real headless Chromium (driven through chromedriver's W3C WebDriver HTTP protocol)."""

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings

import numpy as np
import PIL.Image
import pytest
import torch
from test_latent import one_thread, tiny_generator  # noqa: F401

from sgtrain.cli.explore import _split_network
from sgtrain.io import save_network
from sgtrain.latent import load_ws, mix_ws, render_ws, seeds_to_ws, seeds_to_z, style_mixing_grid
from sgtrain.latent.directions import Direction, load_directions
from sgtrain.latent.explore import Explorer, create_app, png_bytes
from sgtrain.latent.studio import (
    capabilities,
    layer_groups,
    make_transform,
    render_controls,
    require_w,
)

with warnings.catch_warnings():  # starlette's notice about httpx2, not ours
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class ProGANLike(torch.nn.Module):
    """A z-only generator (no mapping/synthesis, no W): called as G(z, c)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 8, 0, 8, 3
        self.fc = torch.nn.Linear(8, 3 * 8 * 8)

    def forward(self, z, c):
        return torch.tanh(self.fc(z)).view(-1, 3, 8, 8)


def decode(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(PIL.Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def url_bytes(data_url: str) -> bytes:
    return base64.b64decode(data_url.split(",", 1)[1])


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


@pytest.fixture(scope="module")
def client(G):
    ex = Explorer({"sg2": G, "zonly": ProGANLike().eval()}, w_avg_samples=200)
    return TestClient(create_app(ex, hosts=("testserver",))), ex


# Capabilities and render controls -----------------------------------------------------------------------------------


def test_capabilities_by_what_a_network_has(G):
    caps = capabilities(G)
    assert caps.w_space and caps.num_ws == 6 and caps.w_dim == 32 and not caps.transform
    assert caps.noise_layers == ["b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1"]
    z = capabilities(ProGANLike())
    assert not z.w_space and z.num_ws == 0 and z.noise_layers == []
    with pytest.raises(ValueError, match=r"has no W space \(ProGANLike\): style mixing needs a style-based"):
        require_w(ProGANLike(), "style mixing")
    require_w(G, "style mixing")
    assert layer_groups(6, 16) == [("4px", [0, 1]), ("8px", [2, 3]), ("16px", [4, 5])]
    assert layer_groups(16, 256)[0] == ("layer 0", [0])  # num_ws off the StyleGAN2 rule: one group per layer


def test_noise_off_per_layer_and_restore(G):
    ws = seeds_to_ws(G, [3])
    before = {k: v.clone() for k, v in G.state_dict().items()}
    ref = render_ws(G, ws)
    with render_controls(G, ["b16.conv1"]):
        one_off = render_ws(G, ws)
    with render_controls(G, capabilities(G).noise_layers):
        all_off = render_ws(G, ws)
    assert not torch.equal(one_off, ref)
    assert torch.equal(all_off, render_ws(G, ws, noise_mode="none"))  # every layer off = no noise at all
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())  # restored exactly
    assert torch.equal(render_ws(G, ws), ref)
    with pytest.raises(ValueError, match="no noise layers"):
        with render_controls(G, ["b99.conv0"]):
            pass
    with pytest.raises(ValueError, match="has no input transform"):
        with render_controls(G, translate=[0.1, 0]):
            pass


def test_input_transform_is_set_inside_and_restored(G):
    """A StyleGAN3-like synthesis has input.transform; render_controls writes the inverse of the user's transform."""
    import copy

    G3 = copy.deepcopy(G)
    G3.synthesis.input = torch.nn.Module()
    G3.synthesis.input.register_buffer("transform", torch.eye(3))
    seen = []
    G3.synthesis.register_forward_pre_hook(lambda m, a: seen.append(m.input.transform.clone()))
    assert capabilities(G3).transform
    with render_controls(G3, translate=[0.25, -0.5], rotate=90):
        render_ws(G3, seeds_to_ws(G3, [0]))
    m = make_transform([0.25, -0.5], 90)
    assert np.allclose(m[:2, :2], [[0, 1], [-1, 0]], atol=1e-12) and np.allclose(m[:2, 2], [0.25, -0.5])
    assert torch.allclose(seen[0].double(), torch.from_numpy(np.linalg.inv(m)), atol=1e-6)
    assert torch.equal(G3.synthesis.input.transform, torch.eye(3))


def test_direction_files_both_kinds(G, tmp_path):
    d = torch.randn(32)
    np.savez(tmp_path / "smile.npz", direction=d.numpy(), layers=np.array([0, 1, 2]), name="smile", accuracy=0.9)
    (got,) = load_directions(tmp_path / "smile.npz", need_w=True)
    assert got.name == "smile" and got.layers == [0, 1, 2] and got.accuracy == pytest.approx(0.9)
    ws = seeds_to_ws(G, [1, 2])
    out = got.apply(ws, 2.0)
    assert torch.equal(out[:, 3:], ws[:, 3:]) and torch.allclose(out[:, :3], ws[:, :3] + 2 * d)
    per_layer = torch.randn(6, 32)
    np.savez(tmp_path / "pl.npz", direction=per_layer.numpy())
    (got,) = load_directions(tmp_path / "pl.npz", need_w=True)
    assert got.layers is None and torch.allclose(got.apply(ws, -1.0), ws - per_layer)
    np.savez(tmp_path / "sefa.npz", directions=np.eye(32, dtype=np.float32), eigenvalues=np.ones(32), layers=[0, 1])
    assert torch.stack([d.vector for d in load_directions(tmp_path / "sefa.npz", need_w=True)]).shape == (32, 32)
    np.savez(tmp_path / "bad.npz", w=np.zeros(3))
    with pytest.raises(KeyError, match="'direction'"):
        load_directions(tmp_path / "bad.npz", need_w=True)
    with pytest.raises(ValueError, match="w_dim 31"):
        Direction(torch.zeros(31), "w").apply(ws, 1.0)


# The API behind the page ---------------------------------------------------------------------------------------------


def test_mixing_equals_sgtrain_mix_bytes(client, G, tmp_path):
    c, _ = client
    r = c.post("/api/render", json={"net": "sg2", "a": {"seed": 3}, "b": {"seed": 9}, "psi": 0.6, "mix": "0-3"})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["main"] == "mix" and j["layers"] == [0, 1, 2, 3]
    ref = style_mixing_grid(G, [3], [9], "0-3", truncation_psi=0.6)
    assert np.array_equal(decode(j["images"]["mix"]), ref["mixed"][0, 0].numpy())
    assert np.array_equal(decode(j["images"]["a"]), ref["rows"][0].numpy())
    from sgtrain.latent import save_image

    save_image(ref["mixed"][0, 0].numpy(), tmp_path / "3-9.png")
    assert url_bytes(j["images"]["mix"]) == (tmp_path / "3-9.png").read_bytes()


def test_seed_psi_directions_and_latent_download(client, G):
    c, ex = client
    base = {"net": "sg2", "a": {"seed": 3}}
    img = lambda body: c.post("/api/render", json=body).json()["images"]["a"]  # noqa: E731
    a3, a4, a3psi = img(base), img({**base, "a": {"seed": 4}}), img({**base, "psi": 0.3})
    assert a3 != a4 and a3 != a3psi
    assert np.array_equal(decode(a3psi), render_ws(G, seeds_to_ws(G, [3], 0.3))[0].numpy())
    _, d = ex.nets["sg2"].directions["sefa0"]
    edited = img({**base, "directions": {"sefa0": 3.0}})
    want = render_ws(G, d.apply(seeds_to_ws(G, [3]), 3.0))[0].numpy()
    assert np.array_equal(decode(edited), want) and edited != a3
    r = c.post("/api/latent.npz", json={**base, "b": {"seed": 9}, "mix": "coarse", "directions": {"sefa0": 3.0}})
    w = np.load(io.BytesIO(r.content))["w"]
    wa = d.apply(seeds_to_ws(G, [3]), 3.0)
    wb = d.apply(seeds_to_ws(G, [9]), 3.0)
    assert w.shape == (1, 6, 32) and np.array_equal(w, mix_ws(wa, wb, [0, 1])[0].numpy())


def test_uploaded_latent_and_direction(client, G, tmp_path):
    c, _ = client
    ws = seeds_to_ws(G, [11, 12]) + 0.1
    np.savez(tmp_path / "two.npz", w=ws.numpy())
    r = c.post("/api/latents", files={"file": ("two.npz", (tmp_path / "two.npz").read_bytes())}, data={"net": "sg2"})
    assert r.status_code == 200, r.text
    ids = r.json()["ids"]
    assert len(ids) == 2
    got = c.post("/api/render", json={"net": "sg2", "a": {"latent": ids[1]}}).json()["images"]["a"]
    assert np.array_equal(decode(got), render_ws(G, ws[1:])[0].numpy())
    d = torch.randn(32)
    np.savez(tmp_path / "attr.npz", direction=d.numpy(), name="attr")
    r = c.post("/api/directions", files={"file": ("attr.npz", (tmp_path / "attr.npz").read_bytes())},
               data={"net": "sg2"})
    did = r.json()["ids"][0]
    assert any(x["id"] == did and x["name"] == "attr.npz" for x in r.json()["directions"])
    got = c.post("/api/render", json={"net": "sg2", "a": {"seed": 5}, "directions": {did: -2.0}}).json()
    assert np.array_equal(decode(got["images"]["a"]), render_ws(G, seeds_to_ws(G, [5]) - 2 * d)[0].numpy())
    np.savez(tmp_path / "wrong.npz", direction=np.zeros(7, np.float32))
    r = c.post("/api/directions", files={"file": ("wrong.npz", (tmp_path / "wrong.npz").read_bytes())},
               data={"net": "sg2"})
    assert r.status_code == 400 and "fit no W space" in r.json()["error"]


def test_grid_layer_view_interpolation(client, G):
    c, _ = client
    r = c.post("/api/grid", json={"net": "sg2", "start": 4, "count": 8, "psi": 0.7}).json()
    assert r["seeds"] == list(range(4, 12)) and len(r["images"]) == 8
    ref = render_ws(G, torch.cat([seeds_to_ws(G, [s], 0.7) for s in range(4, 12)]))
    assert all(np.array_equal(decode(u), ref[i].numpy()) for i, u in enumerate(r["images"]))
    cells = c.post("/api/layers", json={"net": "sg2", "a": {"seed": 1}, "b": {"seed": 2}}).json()["cells"]
    assert [x["layers"] for x in cells] == ["0-1", "2-3", "4-5"]
    wa, wb = seeds_to_ws(G, [1]), seeds_to_ws(G, [2])
    ref = render_ws(G, torch.cat([mix_ws(wa, wb, ls)[0] for ls in ([0, 1], [2, 3], [4, 5])]))
    assert all(np.array_equal(decode(x["image"]), ref[i].numpy()) for i, x in enumerate(cells))
    frames = c.post("/api/interpolate", json={"net": "sg2", "a": {"seed": 1}, "b": {"seed": 2}, "frames": 5}).json()
    ends = [decode(frames["images"][k]).astype(int) for k in (0, -1)]
    ref = render_ws(G, seeds_to_ws(G, [1, 2])).numpy().astype(int)
    assert len(frames["images"]) == 5
    assert np.abs(ends[0] - ref[0]).max() <= 1 and np.abs(ends[1] - ref[1]).max() <= 1  # batch rounding only
    assert np.abs(ends[0] - ref[1]).mean() > 5


def test_z_only_network(client):
    c, _ = client
    info = {n["name"]: n for n in c.get("/api/networks").json()}
    assert not info["zonly"]["caps"]["w_space"] and "presets" not in info["zonly"]
    assert len(c.post("/api/grid", json={"net": "zonly", "count": 4}).json()["images"]) == 4
    r = c.post("/api/render", json={"net": "zonly", "a": {"seed": 2}}).json()
    G = ProGANLike().eval()
    with torch.no_grad():
        want = ((G(seeds_to_z([2], 8), None) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0))
    assert np.array_equal(decode(r["images"]["a"]), want.numpy())
    assert len(c.post("/api/interpolate", json={"net": "zonly", "a": {"seed": 1}, "b": {"seed": 2}, "frames": 3})
               .json()["images"]) == 3
    r = c.post("/api/render", json={"net": "zonly", "a": {"seed": 2}, "b": {"seed": 3}, "mix": "0-1"})
    assert r.status_code == 400
    assert "this network has no W space (ProGANLike): style mixing needs a style-based generator" in r.json()["error"]
    buf = io.BytesIO()
    PIL.Image.new("RGB", (8, 8)).save(buf, format="PNG")
    r = c.post("/api/project", files={"file": ("x.png", buf.getvalue())}, data={"net": "zonly"})
    assert r.status_code == 400 and "projection needs a style-based generator" in r.json()["error"]


def test_projection_job_progress_and_cancel(client, G):
    c, ex = client
    target = render_ws(G, seeds_to_ws(G, [7]))[0].numpy()
    r = c.post("/api/project", files={"file": ("seven.png", png_bytes(target))},
               data={"net": "sg2", "space": "w+", "steps": "30", "loss": "mse"})
    assert r.status_code == 200, r.text
    job = r.json()
    while job["state"] == "running":
        time.sleep(0.05)
        job = c.get(f"/api/jobs/{job['id']}").json()
    assert job["state"] == "done" and job["step"] == 30 and "PSNR" in job["message"], job
    latent = ex.latents[job["latent"]]["value"]
    assert latent.shape == (6, 32) and set(job["images"]) == {"target", "projection"}
    assert len([x for x in c.get("/api/networks").json() if x["name"] == "sg2"][0]["latents"]) >= 1
    r = c.post("/api/project", files={"file": ("seven.png", png_bytes(target))},
               data={"net": "sg2", "steps": "100000", "loss": "mse"})
    assert r.status_code == 400 and "steps must be between 1 and 20000" in r.json()["error"]  # bounded work
    r = c.post("/api/project", files={"file": ("seven.png", png_bytes(target))},
               data={"net": "sg2", "steps": "20000", "loss": "mse"})
    jid = r.json()["id"]
    c.post(f"/api/jobs/{jid}/cancel")
    for _ in range(400):
        if ex.jobs[jid].state != "running":
            break
        time.sleep(0.05)
    assert ex.jobs[jid].state == "cancelled"
    r = c.post("/api/project", files={"file": ("seven.png", png_bytes(target))},
               data={"net": "sg2", "loss": "lpips-vgg"})
    assert r.status_code == 400 and "--vgg" in r.json()["error"]


def test_user_errors_answer_400(client):
    c, _ = client
    r = c.post("/api/render", json={"net": "nope", "a": {"seed": 1}})
    assert r.status_code == 400 and "unknown network 'nope'" in r.json()["error"]
    r = c.post("/api/render", json={"net": "sg2", "a": {"seed": 1}, "mix": "0-3"})
    assert r.status_code == 400 and "second latent B" in r.json()["error"]
    r = c.post("/api/render", json={"net": "sg2", "a": {"seed": 1}, "b": {"seed": 2}, "mix": "0-9"})
    assert r.status_code == 400 and "out of range" in r.json()["error"]
    r = c.post("/api/render", json={"net": "sg2", "a": {"seed": 1}, "rotate": 10})
    assert r.status_code == 400 and "StyleGAN3" in r.json()["error"]
    assert "<title>sgtrain explorer</title>" in c.get("/").text
    assert "http" not in c.get("/").text.split("<script>")[1].replace("http://127.0.0.1", "")  # no external assets


def test_network_names_on_the_command_line(tmp_path):
    assert _split_network("emoji=runs/quickstart") == ("emoji", "runs/quickstart")
    assert _split_network("runs/quickstart") == (None, "runs/quickstart")
    odd = tmp_path / "a=b.safetensors"
    odd.write_bytes(b"")
    assert _split_network(str(odd)) == (None, str(odd))


# The page in a real browser -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    """The few W3C WebDriver commands this test needs, over HTTP to chromedriver (no selenium)."""

    ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

    def __init__(self, profile: str):
        self.port = free_port()
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for(lambda: self.call("GET", "/status").get("ready"), 20, "chromedriver did not start")
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--window-size=1280,1100"]
        caps = {"browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}
        self.session = self.call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"WebDriver {method} {path}: {e.read().decode()[:500]}") from e

    def s(self, method: str, path: str, body: dict | None = None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def js(self, script: str, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, path) -> None:
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def upload(self, selector: str, file: str) -> None:
        el = self.s("POST", "/element", {"using": "css selector", "value": selector})[self.ELEMENT]
        self.s("POST", f"/element/{el}/value", {"text": file})

    def close(self) -> None:
        try:
            self.s("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait(10)


def wait_for(fn, timeout: float, what: str):
    end = time.time() + timeout
    while True:
        try:
            v = fn()
        except (urllib.error.URLError, ConnectionError, OSError):
            v = None
        if v:
            return v
        if time.time() > end:
            raise AssertionError(f"timed out after {timeout:g} s: {what}")
        time.sleep(0.05)


def console_script(name: str) -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(exe):
        return [exe]
    return [sys.executable, "-m", "sgtrain.cli." + name.split("-", 1)[1]]


SET_VALUE = """const el = document.querySelector(arguments[0]);
if (el.type === 'checkbox') el.checked = arguments[1]; else el.value = arguments[1];
el.dispatchEvent(new Event('input', {bubbles: true})); el.dispatchEvent(new Event('change', {bubbles: true}));"""


@pytest.mark.skipif(not os.path.exists(CHROMIUM) or not os.path.exists(CHROMEDRIVER),
                    reason=f"needs Chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER}): "
                           "apt-get install -y chromium chromium-driver")
def test_page_in_headless_chromium(tmp_path):
    """sgtrain-explore started as a user would; the page driven in Chromium: seed and psi change the image, the
    style-mixing image equals sgtrain-mix's ROW-COL.png byte for byte (both processes on one CPU thread, the same
    network, seeds, psi, layers, batch size and noise mode), a projection upload finishes. Screenshots: tmp_path."""
    G = tiny_generator()
    save_network(tmp_path / "tiny", G_ema=G)
    net = str(tmp_path / "tiny.safetensors")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(console_script("sgtrain-explore") + ["--network", net, "--port", str(port), "--device",
                              "cpu", "--w-avg-samples", "200"], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    # The single command for the same mix, run meanwhile (same thread count as the server).
    mix_cmd = subprocess.Popen(console_script("sgtrain-mix") + ["--network", net, "--rows", "3", "--cols", "9",
                               "--styles", "0-3", "--trunc", "0.5", "--device", "cpu", "--outdir",
                               str(tmp_path / "mix")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    browser = None
    try:
        wait_for(lambda: server.poll() is None and urllib.request.urlopen(url + "api/networks", timeout=2).status
                 == 200 or server.poll() is not None, 60, "sgtrain-explore did not start")
        assert server.poll() is None, (tmp_path / "server.log").read_text()
        browser = WebDriver(str(tmp_path / "profile"))
        browser.s("POST", "/url", {"url": url})

        def settle(after: int) -> str:
            wait_for(lambda: browser.js("return window.sg && sg.idle() && sg.renders > arguments[0]", after), 30,
                     f"a render after #{after}; status: {browser.js('return document.body.dataset.status')}")
            assert browser.js("return document.body.dataset.status") == "ready", browser.js(
                "return document.getElementById('status').textContent")
            return browser.js("return document.getElementById('main').src")

        def renders() -> int:
            return browser.js("return sg.renders")

        first = settle(0)
        wait_for(lambda: browser.js("return document.body.dataset.grid"), 30, "the seed grid")
        assert browser.js("return document.querySelectorAll('#grid img').length") == 16
        browser.screenshot(shots / "1_loaded.png")

        n = renders()
        browser.js(SET_VALUE, "#seedA", "7")
        seven = settle(n)
        assert seven != first
        n = renders()
        browser.js(SET_VALUE, "#psi", "0.5")
        psi = settle(n)
        assert psi != seven
        browser.screenshot(shots / "2_seed_psi.png")

        n = renders()
        browser.js(SET_VALUE, "#seedA", "3")
        browser.js(SET_VALUE, "#srcB", "seed")
        browser.js(SET_VALUE, "#seedB", "9")
        browser.js(SET_VALUE, "#mixLayers", "0-3")
        browser.js(SET_VALUE, "#mix", True)
        mixed = settle(n)
        assert mixed == browser.js("return document.getElementById('imgMix').src")
        assert mix_cmd.wait(60) == 0, mix_cmd.stdout.read().decode()
        cell = (tmp_path / "mix" / "3-9.png").read_bytes()
        assert np.array_equal(decode(mixed), np.asarray(PIL.Image.open(tmp_path / "mix" / "3-9.png")))
        assert url_bytes(mixed) == cell
        assert not np.array_equal(decode(mixed), np.asarray(PIL.Image.open(tmp_path / "mix" / "3-3.png")))
        browser.js("document.getElementById('layersBtn').click()")
        wait_for(lambda: browser.js("return document.body.dataset.layerview"), 30, "the per-layer view")
        browser.screenshot(shots / "3_mix.png")

        target = tmp_path / "target.png"
        PIL.Image.fromarray(render_ws(G, seeds_to_ws(G, [21]))[0].numpy()).save(target)
        browser.upload("#projFile", str(target))
        browser.js(SET_VALUE, "#projSteps", "5")
        browser.js(SET_VALUE, "#projSpace", "w+")
        n = renders()
        browser.js("document.getElementById('projStart').click()")
        wait_for(lambda: browser.js("return document.body.dataset.proj") in ("done", "error", "cancelled"), 60,
                 "the projection")
        assert browser.js("return document.body.dataset.proj") == "done", browser.js(
            "return document.getElementById('projStatus').textContent")
        assert browser.js("return document.getElementById('srcA').value").startswith("lat")
        projected = settle(n)
        assert projected != mixed
        assert "5/5" in browser.js("return document.getElementById('projStatus').textContent")
        browser.screenshot(shots / "4_projected.png")
        for shot in shots.iterdir():
            assert PIL.Image.open(shot).size[0] > 0
    finally:
        if browser is not None:
            browser.close()
        server.terminate()
        server.wait(10)
        log.close()
        if mix_cmd.poll() is None:
            mix_cmd.kill()
        mix_cmd.wait(10)
        mix_cmd.stdout.close()


def test_load_ws_reads_the_download(client, G, tmp_path):
    """The page's latent download is what sgtrain-generate --projected-w reads."""
    c, _ = client
    r = c.post("/api/latent.npz", json={"net": "sg2", "a": {"seed": 5}, "psi": 0.5})
    (tmp_path / "dl.npz").write_bytes(r.content)
    assert torch.equal(load_ws(tmp_path / "dl.npz", 6, 32), seeds_to_ws(G, [5], 0.5))


def test_other_families_by_capability():
    """The families being added (ProGAN: z only; StyleGAN3: input transform, no noise) through the same API."""
    progan = pytest.importorskip("sgtrain.models.progan")
    stylegan3 = pytest.importorskip("sgtrain.models.stylegan3")
    torch.manual_seed(0)
    pg = progan.Generator(num_channels=3, resolution=16, fmap_base=32, fmap_max=16).eval()
    sg3 = stylegan3.Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=16, img_channels=3, channel_base=64,
                              channel_max=4, mapping_kwargs=dict(num_layers=2)).eval()
    assert not capabilities(pg).w_space
    caps = capabilities(sg3)
    assert caps.w_space and caps.transform and caps.noise_layers == []
    c = TestClient(create_app(Explorer({"pg": pg, "sg3": sg3}, w_avg_samples=100), hosts=("testserver",)))
    r = c.post("/api/render", json={"net": "pg", "a": {"seed": 1}, "b": {"seed": 2}, "mix": "0-1"})
    assert r.status_code == 400 and r.json()["error"].startswith(
        "this network has no W space (ProGAN): style mixing needs a style-based generator")
    r = c.post("/api/render", json={"net": "pg", "a": {"seed": 1}, "translate": [0.2, 0]})
    assert r.status_code == 400 and "no input transform (ProGAN)" in r.json()["error"]
    assert len(c.post("/api/grid", json={"net": "pg", "count": 4}).json()["images"]) == 4
    still = c.post("/api/render", json={"net": "sg3", "a": {"seed": 1}}).json()["images"]["a"]
    moved = c.post("/api/render", json={"net": "sg3", "a": {"seed": 1}, "translate": [0.3, 0], "rotate": 10}).json()
    assert moved["images"]["a"] != still
    assert torch.equal(sg3.synthesis.input.transform, torch.eye(3))
    # Rendered afresh (noise_mode random is never cached; StyleGAN3 has no noise inputs): the transform was restored.
    again = c.post("/api/render", json={"net": "sg3", "a": {"seed": 1}, "noise_mode": "random"}).json()
    assert again["images"]["a"] == still


def test_projection_progress_without_a_callback(G, monkeypatch):
    """With a project() that takes no callback, progress counts synthesis calls and cancel still stops the job."""
    import sgtrain.latent.explore as explore_mod

    plain = explore_mod.project

    def project_without_callback(G, targets, space="w", num_steps=10, loss="mse", vgg=None, class_idx=None,
                                 w_avg_samples=100, seed=303, device=None):
        return plain(G, targets, space=space, num_steps=num_steps, loss=loss, vgg=vgg, class_idx=class_idx,
                     w_avg_samples=w_avg_samples, seed=seed, device=device)

    monkeypatch.setattr(explore_mod, "project", project_without_callback)
    ex = Explorer({"sg2": G}, w_avg_samples=100)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.png")
        PIL.Image.fromarray(render_ws(G, seeds_to_ws(G, [7]))[0].numpy()).save(path)
        done = ex.start_projection("sg2", path, "t", steps=12)
        slow = ex.start_projection("sg2", path, "t", steps=20000)
        ex.cancel(slow)
        wait_for(lambda: ex.jobs[done].state != "running" and ex.jobs[slow].state != "running", 60, "the jobs")
    assert ex.jobs[done].state == "done" and ex.jobs[done].done_steps == 12 and ex.jobs[done].latent in ex.latents
    assert ex.jobs[slow].state == "cancelled" and ex.jobs[slow].latent is None


def test_direction_files_in_z_are_refused_and_empty_layers_mean_all(tmp_path):
    import numpy as np

    np.savez(tmp_path / "z.npz", direction=np.ones(16, np.float32), space="z", layers=np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="direction in Z"):
        load_directions(tmp_path / "z.npz", need_w=True)
    np.savez(tmp_path / "w.npz", direction=np.ones(16, np.float32), space="w", layers=np.zeros(0, np.int64))
    assert load_directions(tmp_path / "w.npz", need_w=True)[0].layers is None


def test_wxh_network_is_shown_at_its_own_size(tmp_path):
    """A W x H StyleGAN2 (16x8): the page learns its width and height, every image comes back 16x8 (render, grid,
    layer view, interpolation, a projected upload of another aspect), and the page sizes images from them."""
    G = tiny_generator(init_res=[2, 4])
    ex = Explorer({"wide": G}, w_avg_samples=200, sefa_count=0)
    c = TestClient(create_app(ex, hosts=("testserver",)))
    caps = c.get("/api/networks").json()[0]["caps"]
    assert (caps["img_width"], caps["img_height"], caps["img_resolution"]) == (16, 8, 16)
    r = c.post("/api/render", json={"net": "wide", "a": {"seed": 1}, "b": {"seed": 2}, "mix": "0-1"}).json()
    assert {k: decode(v).shape for k, v in r["images"].items()} == {k: (8, 16, 3) for k in ("a", "b", "mix")}
    grid = c.post("/api/grid", json={"net": "wide", "start": 0, "count": 3}).json()["images"]
    assert [decode(u).shape for u in grid] == [(8, 16, 3)] * 3
    cells = c.post("/api/layers", json={"net": "wide", "a": {"seed": 1}, "b": {"seed": 2}}).json()["cells"]
    assert all(decode(x["image"]).shape == (8, 16, 3) for x in cells)
    frames = c.post("/api/interpolate", json={"net": "wide", "a": {"seed": 1}, "b": {"seed": 2}, "frames": 3}).json()
    assert all(decode(u).shape == (8, 16, 3) for u in frames["images"])
    buf = io.BytesIO()
    PIL.Image.fromarray(render_ws(G, seeds_to_ws(G, [7]))[0].numpy()).resize((40, 30)).save(buf, format="PNG")
    job = c.post("/api/project", files={"file": ("t.png", buf.getvalue())},
                 data={"net": "wide", "steps": "3", "loss": "mse"}).json()
    while job["state"] == "running":
        time.sleep(0.05)
        job = c.get(f"/api/jobs/{job['id']}").json()
    assert job["state"] == "done", job
    assert {k: decode(v).shape for k, v in job["images"].items()} == {"target": (8, 16, 3), "projection": (8, 16, 3)}
    page = c.get("/").text
    assert "img.width = c.img_width; img.height = c.img_height" in page and "aspect-ratio: 1;" not in page
    assert 'setProperty("--aspect", `${c.img_width} / ${c.img_height}`)' in page


@pytest.mark.skipif(not os.path.exists(CHROMIUM) or not os.path.exists(CHROMEDRIVER),
                    reason=f"needs Chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER})")
def test_wxh_page_in_headless_chromium_is_not_stretched(tmp_path):
    """The page over a 16x8 network in Chromium: the main image, the A/B thumbnails and the seed grid are laid out
    twice as wide as high, with the network's width and height as their attributes."""
    save_network(tmp_path / "wide", G_ema=tiny_generator(init_res=[2, 4]))
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    server = subprocess.Popen(console_script("sgtrain-explore") + ["--network", str(tmp_path / "wide.safetensors"),
                              "--port", str(port), "--device", "cpu", "--w-avg-samples", "200"], stdout=log,
                              stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    browser = None
    try:
        wait_for(lambda: server.poll() is not None or urllib.request.urlopen(url + "api/networks", timeout=2).status
                 == 200, 60, "sgtrain-explore did not start")
        assert server.poll() is None, (tmp_path / "server.log").read_text()
        browser = WebDriver(str(tmp_path / "profile"))
        browser.s("POST", "/url", {"url": url})
        wait_for(lambda: browser.js("return window.sg && sg.renders > 0 && !!document.body.dataset.grid && [...document"
                                    ".querySelectorAll('#main, #imgA, #grid img')].every((i) => i.complete && "
                                    "i.naturalWidth > 0)"), 60, "the first render and the seed grid")
        boxes = browser.js("""return [...document.querySelectorAll('#main, #imgA, #grid img')].map((i) => {
            const r = i.getBoundingClientRect(), s = getComputedStyle(i), px = (k) => parseFloat(s[k]);
            return [i.id || 'grid',  // the content box: the grid's selection border is not the image
                    r.width - px('borderLeftWidth') - px('borderRightWidth'),
                    r.height - px('borderTopWidth') - px('borderBottomWidth'),
                    i.getAttribute('width'), i.getAttribute('height'), i.naturalWidth, i.naturalHeight]; });""")
        assert len(boxes) == 2 + 16
        for name, w, h, aw, ah, nw, nh in boxes:
            assert (aw, ah, nw, nh) == ("16", "8", 16, 8), (name, aw, ah, nw, nh)
            assert w > 0 and abs(w / h - 2) < 0.05, (name, w, h)
        assert "16x8" in browser.js("return document.getElementById('netinfo').textContent")
        browser.screenshot(tmp_path / "wide.png")
    finally:
        if browser is not None:
            browser.close()
        server.terminate()
        server.wait(10)
        log.close()
