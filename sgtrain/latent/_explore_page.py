"""The single HTML page of ``sgtrain-explore``: plain HTML, CSS and JavaScript, no external assets."""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sgtrain explorer</title>
<style>
  :root { --bg: #f6f6f4; --panel: #fff; --line: #ddd; --ink: #222; --dim: #777; --accent: #2f6fdf;
          --aspect: 1; }  /* width / height of the network's images (set per network: W x H is never stretched) */
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.35 system-ui, sans-serif; background: var(--bg); color: var(--ink); }
  header { display: flex; gap: 12px; align-items: center; padding: 8px 14px; background: #222; color: #eee;
           flex-wrap: wrap; }
  header h1 { font-size: 16px; margin: 0 8px 0 0; }
  header select { font-size: 14px; }
  #netinfo { color: #bbb; font-size: 12px; }
  #status { margin-left: auto; font-size: 12px; color: #9c9; }
  #status.error { color: #f88; }
  main { display: grid; grid-template-columns: minmax(230px, 300px) minmax(320px, 1fr) minmax(250px, 330px);
         gap: 10px; padding: 10px; }
  @media (max-width: 980px) { main { grid-template-columns: 1fr; } }
  section { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px;
            margin-bottom: 10px; }
  section h2 { font-size: 13px; margin: 0 0 6px; text-transform: uppercase; letter-spacing: .04em; color: #555; }
  img.px { image-rendering: pixelated; background: #000; }
  img.px:not([src]) { display: none; }  /* no broken image before the first render */
  #grid:empty::before { content: "loading seeds..."; color: var(--dim); }
  #mainLoading { padding: 40px 0; text-align: center; color: var(--dim); }
  #grid { display: grid; grid-template-columns: repeat(4, 1fr); gap: 3px; }
  #grid img { width: 100%; height: auto; aspect-ratio: auto var(--aspect); cursor: pointer;
              border: 2px solid transparent; }
  #grid img.selA { border-color: var(--accent); }
  #grid img.selB { border-color: #e08a00; }
  #main { width: min(100%, 384px); height: auto; aspect-ratio: auto var(--aspect); display: block; margin: 0 auto; }
  .thumbs { display: flex; gap: 8px; justify-content: center; margin-top: 8px; }
  .thumbs figure { margin: 0; text-align: center; font-size: 12px; color: var(--dim); }
  .thumbs img { width: 96px; height: auto; aspect-ratio: auto var(--aspect); }
  .row { display: flex; gap: 6px; align-items: center; margin: 4px 0; flex-wrap: wrap; }
  .row label { min-width: 70px; color: #444; }
  .row input[type=number] { width: 80px; }
  .row input[type=range] { flex: 1; min-width: 100px; }
  .strip { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 6px; }
  .strip figure { margin: 0; font-size: 11px; text-align: center; color: var(--dim); cursor: pointer; }
  .strip img { width: 64px; height: auto; aspect-ratio: auto var(--aspect); }
  .hidden { display: none !important; }
  .note { font-size: 12px; color: var(--dim); }
  button { cursor: pointer; }
  progress { width: 100%; }
  .dir .row label { min-width: 90px; font-size: 12px; }
  .noise { columns: 2; font-size: 12px; }
</style>
</head>
<body>
<header>
  <h1>sgtrain explorer</h1>
  <select id="net" title="network"></select>
  <span id="netinfo"></span>
  <span id="status">loading</span>
</header>
<main>
  <div>
    <section>
      <h2>Seeds</h2>
      <div class="row"><label for="gridStart">from seed</label><input id="gridStart" type="number" value="0" min="0">
        <button id="gridPrev" title="previous 16">&lt;</button><button id="gridNext" title="next 16">&gt;</button></div>
      <div class="row"><span class="note">click sets</span>
        <label><input type="radio" name="pick" id="pickA" value="a" checked> A</label>
        <label><input type="radio" name="pick" id="pickB" value="b"> B</label></div>
      <div id="grid"></div>
    </section>
    <section>
      <h2>Latents</h2>
      <div class="row"><label for="srcA">A</label><select id="srcA"></select>
        <input id="seedA" type="number" value="0" min="0" title="seed of A"></div>
      <div class="row"><label for="srcB">B</label><select id="srcB"></select>
        <input id="seedB" type="number" value="1" min="0" title="seed of B"></div>
      <div class="row w-only"><label for="latFile">upload</label>
        <input id="latFile" type="file" accept=".npz,.npy" title="a .npz (key 'w') or .npy of ws"></div>
    </section>
  </div>
  <div>
    <section>
      <div id="mainLoading">loading the first image (the network is being mapped)...</div>
      <img id="main" class="px" alt="main image">
      <div class="thumbs">
        <figure><img id="imgA" class="px" alt="A"><figcaption>A</figcaption></figure>
        <figure id="figB"><img id="imgB" class="px" alt="B"><figcaption>B</figcaption></figure>
        <figure id="figMix"><img id="imgMix" class="px" alt="mix"><figcaption>A with B's layers</figcaption></figure>
      </div>
      <div class="row" style="justify-content:center">
        <a id="dlPng" download="sgtrain.png"><button type="button">download PNG</button></a>
        <button id="dlLatent" type="button">download latent (.npz)</button>
      </div>
    </section>
    <section class="w-only">
      <h2>Truncation</h2>
      <div class="row"><label for="psi">psi</label><input id="psi" type="range" min="-1" max="2" step="0.05" value="1">
        <span id="psiVal">1.00</span></div>
      <div class="row"><label for="cutoff">cutoff</label><input id="cutoff" type="number" min="0" placeholder="all">
        <span class="note">truncate only the first layers</span></div>
      <div class="row"><label for="noiseMode">noise</label><select id="noiseMode">
        <option value="const">const (repeatable)</option><option value="random">random</option>
        <option value="none">none</option></select></div>
    </section>
    <section id="clsSection" class="hidden">
      <div class="row"><label for="cls">class</label><input id="cls" type="number" min="0" value="0"></div>
    </section>
    <section class="w-only">
      <h2>Style mixing</h2>
      <div class="row"><label><input id="mix" type="checkbox"> mix</label>
        <label for="mixLayers">B's layers</label><input id="mixLayers" type="text" value="0-3" size="10">
        <span id="presets"></span></div>
      <div class="row"><button id="layersBtn" type="button">per-layer view</button>
        <span class="note">A with one layer group from B; click one to mix those layers</span></div>
      <div id="layerView" class="strip"></div>
    </section>
    <section>
      <h2>Interpolation A &rarr; B</h2>
      <div class="row"><label for="interpN">frames</label><input id="interpN" type="number" min="2" max="32" value="8">
        <button id="interpBtn" type="button">show</button></div>
      <div id="interpView" class="strip"></div>
    </section>
  </div>
  <div>
    <section class="w-only dir">
      <h2>Directions</h2>
      <div id="dirs"></div>
      <div class="row"><button id="dirReset" type="button">reset</button>
        <input id="dirFile" type="file" accept=".npz" title="a direction .npz ('direction' or 'directions')"></div>
    </section>
    <section id="noiseSection" class="w-only">
      <h2>Noise per layer</h2>
      <div class="row"><button id="noiseAll" type="button">all on</button>
        <button id="noiseNone" type="button">all off</button></div>
      <div id="noiseList" class="noise"></div>
    </section>
    <section id="tfSection" class="hidden">
      <h2>Translate / rotate</h2>
      <div class="row"><label for="tx">x</label>
        <input id="tx" type="range" min="-1" max="1" step="0.02" value="0"></div>
      <div class="row"><label for="ty">y</label>
        <input id="ty" type="range" min="-1" max="1" step="0.02" value="0"></div>
      <div class="row"><label for="rot">degrees</label>
        <input id="rot" type="range" min="-180" max="180" step="1" value="0"></div>
    </section>
    <section class="w-only">
      <h2>Project an image</h2>
      <div class="row"><input id="projFile" type="file" accept="image/*"></div>
      <div class="row"><label for="projSpace">space</label><select id="projSpace">
        <option value="w">W</option><option value="w+">W+</option></select>
        <label for="projSteps">steps</label><input id="projSteps" type="number" min="1" value="200"></div>
      <div class="row"><label for="projLoss">loss</label><select id="projLoss"><option value="mse">mse</option></select>
        <button id="projStart" type="button">project</button><button id="projCancel" type="button">cancel</button></div>
      <progress id="projProgress" max="1" value="0"></progress>
      <div id="projStatus" class="note"></div>
      <div id="projImages" class="strip"></div>
    </section>
  </div>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const S = { nets: [], net: null, renders: 0, seq: 0, inflight: false, pending: false, dirty: false, timer: null,
            job: null };
window.sg = S;

function status(text, isError) {
  const el = $("status"); el.textContent = text; el.classList.toggle("error", !!isError);
  document.body.dataset.status = isError ? "error" : text;
}

async function api(path, body) {
  const opts = body === undefined ? {} : (body instanceof FormData ? { method: "POST", body } :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const r = await fetch(path, opts);
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { const j = await r.json(); msg = j.error || j.detail || msg; } catch (e) { /* not json */ }
    throw new Error(typeof msg === "string" ? msg : JSON.stringify(msg));
  }
  return r;
}

function cur() { return S.nets.find((n) => n.name === S.net); }

function ref(which) {
  const src = $("src" + which).value;
  if (src === "none") return null;
  if (src === "seed") return { seed: parseInt($("seed" + which).value || "0", 10) };
  return { latent: src };
}

function state() {
  const n = cur(), w = n.caps.w_space;
  const st = { net: n.name, a: ref("A"), b: ref("B") };
  if (n.caps.c_dim > 0) st.class_idx = parseInt($("cls").value || "0", 10);
  if (!w) return st;
  st.psi = parseFloat($("psi").value);
  st.cutoff = $("cutoff").value === "" ? null : parseInt($("cutoff").value, 10);
  st.noise_mode = $("noiseMode").value;
  st.noise_off = [...document.querySelectorAll("#noiseList input")].filter((c) => !c.checked)
    .map((c) => c.dataset.layer);
  st.mix = $("mix").checked && st.b ? $("mixLayers").value.trim() : null;
  st.directions = {};
  for (const s of document.querySelectorAll("#dirs input[type=range]")) {
    if (parseFloat(s.value) !== 0) st.directions[s.dataset.id] = parseFloat(s.value);
  }
  if (n.caps.transform) {
    st.translate = [parseFloat($("tx").value), parseFloat($("ty").value)];
    st.rotate = parseFloat($("rot").value);
  }
  return st;
}

// Render on demand: at most one request in flight and one waiting; intermediate slider positions are skipped.
function requestRender() {
  clearTimeout(S.timer);
  S.dirty = true;
  S.timer = setTimeout(() => { S.dirty = false; if (S.inflight) S.pending = true; else doRender(); }, 40);
}
S.idle = () => !S.dirty && !S.inflight && !S.pending;

async function doRender() {
  S.inflight = true; S.pending = false;
  const seq = ++S.seq;
  status("rendering");
  try {
    const st = state();
    const r = await (await api("/api/render", st)).json();
    if (seq === S.seq) {
      $("imgA").src = r.images.a;
      $("figB").classList.toggle("hidden", !r.images.b);
      if (r.images.b) $("imgB").src = r.images.b;
      $("figMix").classList.toggle("hidden", !r.images.mix);
      if (r.images.mix) $("imgMix").src = r.images.mix;
      $("main").src = r.images[r.main];
      if ($("mainLoading")) $("mainLoading").remove();
      $("dlPng").href = r.images[r.main];
      $("dlPng").download = S.net + (st.mix ? "-mix" : "") + ".png";
      markGrid();
    }
    S.renders += 1;
    document.body.dataset.renders = String(S.renders);
    status("ready");
  } catch (e) {
    status(e.message, true);
  } finally {
    S.inflight = false;
    if (S.pending) doRender();
  }
}

async function loadGrid() {
  const n = cur();
  const body = { ...state(), start: parseInt($("gridStart").value || "0", 10), count: 16 };
  delete body.directions;
  try {
    const r = await (await api("/api/grid", body)).json();
    const g = $("grid"); g.innerHTML = "";
    r.seeds.forEach((seed, i) => {
      const img = sized(document.createElement("img"));
      img.className = "px"; img.src = r.images[i]; img.title = "seed " + seed; img.dataset.seed = seed;
      img.addEventListener("click", () => pickSeed(seed));
      g.appendChild(img);
    });
    document.body.dataset.grid = n.name + ":" + r.seeds[0];
    markGrid();
  } catch (e) { status(e.message, true); }
}

function markGrid() {
  for (const img of document.querySelectorAll("#grid img")) {
    img.classList.toggle("selA", $("srcA").value === "seed" && img.dataset.seed === $("seedA").value);
    img.classList.toggle("selB", $("srcB").value === "seed" && img.dataset.seed === $("seedB").value);
  }
}

function pickSeed(seed) {
  const which = $("pickB").checked ? "B" : "A";
  $("src" + which).value = "seed"; $("seed" + which).value = seed;
  requestRender();
}

function fillLatentSelect(id, latents, withNone) {
  const sel = $(id), old = sel.value;
  sel.innerHTML = "";
  const add = (v, t) => {
    const o = document.createElement("option"); o.value = v; o.textContent = t; sel.appendChild(o);
  };
  if (withNone) add("none", "none");
  add("seed", "seed");
  for (const l of latents) add(l.id, l.name);
  if ([...sel.options].some((o) => o.value === old)) sel.value = old;
}

// An image element gets the network's own width and height (W x H networks are not square).
function sized(img, net) {
  const c = (net || cur()).caps;
  img.width = c.img_width; img.height = c.img_height;
  return img;
}

// Data from the server (names, labels, layer lists) goes into the page as text, never as HTML.
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function buildDirections(n) {
  const box = $("dirs"); box.innerHTML = "";
  const lim = Math.max(1, Math.round((n.w_scale || 1) * 100) / 100);
  for (const d of n.directions) {
    const row = document.createElement("div"); row.className = "row";
    const input = el("input", { type: "range", min: -lim, max: lim, step: lim / 50, value: 0 });
    input.dataset.id = d.id;
    row.append(el("label", { title: "layers " + d.layers }, d.name), input, el("span", { className: "note" }, "0"));
    const s = row.querySelector("input"), v = row.querySelector("span");
    s.addEventListener("input", () => { v.textContent = parseFloat(s.value).toFixed(2); requestRender(); });
    box.appendChild(row);
  }
  if (!n.directions.length) box.innerHTML = '<div class="note">no directions</div>';
}

function buildNoise(n) {
  const box = $("noiseList"); box.innerHTML = "";
  for (const name of n.caps.noise_layers) {
    const l = document.createElement("label"); l.style.display = "block";
    const box2 = el("input", { type: "checkbox", checked: true });
    box2.dataset.layer = name;
    l.append(box2, " " + name);
    l.querySelector("input").addEventListener("change", requestRender);
    box.appendChild(l);
  }
  $("noiseSection").classList.toggle("hidden", !n.caps.w_space || !n.caps.noise_layers.length);
}

function selectNet(name) {
  S.net = name;
  const n = cur(), c = n.caps;
  $("net").value = name;
  document.documentElement.style.setProperty("--aspect", `${c.img_width} / ${c.img_height}`);
  for (const i of document.querySelectorAll("img.px")) sized(i, n);
  const what = [c.family, `${c.img_width}x${c.img_height}`, c.w_space ? `num_ws ${c.num_ws}, w_dim ${c.w_dim}`
    : "z only (no W space: no truncation, mixing, directions or projection)"];
  if (c.c_dim) what.push(`${c.c_dim} classes`);
  $("netinfo").textContent = what.join(" | ");
  document.body.dataset.net = name;
  for (const el of document.querySelectorAll(".w-only")) el.classList.toggle("hidden", !c.w_space);
  $("tfSection").classList.toggle("hidden", !c.transform);
  $("clsSection").classList.toggle("hidden", !c.c_dim);
  fillLatentSelect("srcA", n.latents, false);
  fillLatentSelect("srcB", n.latents, true);
  if (!$("srcB").dataset.touched) $("srcB").value = "seed";
  const pre = $("presets"); pre.innerHTML = "";
  for (const [p, layers] of Object.entries(n.presets || {})) {
    const b = document.createElement("button"); b.type = "button"; b.textContent = p; b.title = "layers " + layers;
    b.addEventListener("click", () => { $("mixLayers").value = layers; $("mix").checked = true; requestRender(); });
    pre.appendChild(b);
  }
  if (n.presets && n.presets.coarse) $("mixLayers").value = n.presets.coarse;
  $("projLoss").innerHTML = '<option value="mse">mse</option>' +
    (n.vgg ? '<option value="lpips-vgg">lpips-vgg</option>' : "");
  buildDirections(n); buildNoise(n);
  $("layerView").innerHTML = ""; $("interpView").innerHTML = "";
  loadGrid(); requestRender();
}

async function refreshNets(keep) {
  S.nets = await (await api("/api/networks")).json();
  if (keep) return;
  const sel = $("net"); sel.innerHTML = "";
  for (const n of S.nets) {
    const o = document.createElement("option"); o.value = n.name; o.textContent = n.name; sel.appendChild(o);
  }
}

async function refreshLatents(selectId) {
  await refreshNets(true);
  const n = cur();
  fillLatentSelect("srcA", n.latents, false);
  fillLatentSelect("srcB", n.latents, true);
  if (selectId) $("srcA").value = selectId;
}

async function layerView() {
  try {
    const st = state();
    if (!st.b) throw new Error("the per-layer view needs a latent B");
    const r = await (await api("/api/layers", st)).json();
    const box = $("layerView"); box.innerHTML = "";
    for (const c of r.cells) {
      const f = document.createElement("figure");
      f.append(sized(el("img", { className: "px", src: c.image })),
               el("figcaption", {}, c.label, el("br"), c.layers));
      f.addEventListener("click", () => { $("mixLayers").value = c.layers; $("mix").checked = true; requestRender(); });
      box.appendChild(f);
    }
    document.body.dataset.layerview = String(r.cells.length);
  } catch (e) { status(e.message, true); }
}

async function interpolate() {
  try {
    const st = { ...state(), frames: parseInt($("interpN").value || "8", 10) };
    if (!st.b) throw new Error("interpolation needs a latent B");
    delete st.mix;
    const r = await (await api("/api/interpolate", st)).json();
    const box = $("interpView"); box.innerHTML = "";
    for (const im of r.images) {
      const i = sized(document.createElement("img")); i.className = "px"; i.src = im; box.appendChild(i);
    }
    document.body.dataset.interp = String(r.images.length);
  } catch (e) { status(e.message, true); }
}

async function downloadLatent() {
  try {
    const blob = await (await api("/api/latent.npz", state())).blob();
    const a = document.createElement("a"); a.href = URL.createObjectURL(blob); a.download = S.net + "-latent.npz";
    document.body.appendChild(a); a.click(); a.remove();
  } catch (e) { status(e.message, true); }
}

async function upload(path, input, extra) {
  const f = input.files[0]; if (!f) return null;
  const fd = new FormData(); fd.append("file", f); fd.append("net", S.net);
  for (const [k, v] of Object.entries(extra || {})) fd.append(k, v);
  try { return await (await api(path, fd)).json(); } catch (e) { status(e.message, true); return null; }
  finally { input.value = ""; }
}

async function startProjection() {
  if (!$("projFile").files[0]) { status("choose an image to project", true); return; }
  const extra = { space: $("projSpace").value, steps: $("projSteps").value, loss: $("projLoss").value };
  if (cur().caps.c_dim) extra.class_idx = $("cls").value;
  document.body.dataset.proj = "running";
  const job = await upload("/api/project", $("projFile"), extra);
  if (!job) { document.body.dataset.proj = "error"; return; }
  S.job = job.id;
  showJob(job);
  pollJob(job.id);
}

function showJob(job) {
  $("projProgress").max = job.steps; $("projProgress").value = job.step;
  $("projStatus").textContent = `${job.name}: ${job.state}, step ${job.step}/${job.steps}` +
    (job.message ? ` - ${job.message}` : "");
  const box = $("projImages"); box.innerHTML = "";
  for (const [k, v] of Object.entries(job.images)) {
    const f = document.createElement("figure");
    f.append(sized(el("img", { className: "px", src: v }), S.nets.find((x) => x.name === job.net)),
             el("figcaption", {}, k));
    box.appendChild(f);
  }
}

async function pollJob(id) {
  try {
    const job = await (await api("/api/jobs/" + id)).json();
    showJob(job);
    if (job.state === "running") { setTimeout(() => pollJob(id), 300); return; }
    if (job.state === "done") {
      if (S.net === job.net) { await refreshLatents(job.latent); requestRender(); }
    }
    document.body.dataset.proj = job.state;
  } catch (e) { status(e.message, true); document.body.dataset.proj = "error"; }
}

function wire() {
  $("net").addEventListener("change", () => selectNet($("net").value));
  const controls = ["seedA", "seedB", "srcA", "srcB", "psi", "cutoff", "noiseMode", "mix", "mixLayers", "cls", "tx",
    "ty", "rot"];
  for (const id of controls) {
    for (const ev of ["input", "change"]) $(id).addEventListener(ev, requestRender);
  }
  $("srcB").addEventListener("change", () => { $("srcB").dataset.touched = "1"; });
  $("psi").addEventListener("input", () => { $("psiVal").textContent = parseFloat($("psi").value).toFixed(2); });
  for (const id of ["psi", "cutoff", "noiseMode", "cls"]) $(id).addEventListener("change", loadGrid);
  $("gridStart").addEventListener("change", loadGrid);
  const page = (d) => {
    $("gridStart").value = Math.max(0, parseInt($("gridStart").value || "0", 10) + d); loadGrid();
  };
  $("gridPrev").addEventListener("click", () => page(-16));
  $("gridNext").addEventListener("click", () => page(16));
  $("layersBtn").addEventListener("click", layerView);
  $("interpBtn").addEventListener("click", interpolate);
  $("dlLatent").addEventListener("click", downloadLatent);
  $("dirReset").addEventListener("click", () => { buildDirections(cur()); requestRender(); });
  const noiseAll = (on) => {
    document.querySelectorAll("#noiseList input").forEach((c) => { c.checked = on; }); requestRender();
  };
  $("noiseAll").addEventListener("click", () => noiseAll(true));
  $("noiseNone").addEventListener("click", () => noiseAll(false));
  $("latFile").addEventListener("change", async () => {
    const r = await upload("/api/latents", $("latFile"));
    if (r) { await refreshLatents(r.ids[0]); requestRender(); }
  });
  $("dirFile").addEventListener("change", async () => {
    const r = await upload("/api/directions", $("dirFile"));
    if (r) { await refreshNets(true); buildDirections(cur()); }
  });
  $("projStart").addEventListener("click", startProjection);
  $("projCancel").addEventListener("click", async () => { if (S.job) await api(`/api/jobs/${S.job}/cancel`, {}); });
}

(async function init() {
  wire();
  try { await refreshNets(false); selectNet(S.nets[0].name); } catch (e) { status(e.message, true); }
})();
</script>
</body>
</html>
"""
