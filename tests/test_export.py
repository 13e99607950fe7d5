"""sgtrain-export: ONNX / TorchScript graphs give sgtrain's images; NVlabs pickles have their structure (issue 28).

NVlabs' own gen_images.py on the exported pickles is checked outside the repo (docs/networks.md records it).
"""

from __future__ import annotations

import os
import pickletools
import subprocess
import sys

import numpy as np
import pytest
import torch
from fixture_weights import fill_module

from sgtrain.io import save_network
from sgtrain.io.export import ExportError, export_onnx, export_torchscript
from sgtrain.io.export_nvlabs import export_nvlabs, nvlabs_snapshot_bytes, pickle_globals, read_nvlabs_export
from sgtrain.models import dcgan, progan, r3gan, stylegan2, stylegan3

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _sg2(c_dim: int = 0) -> torch.nn.Module:
    G = stylegan2.Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=16, img_channels=3, channel_base=128,
                            channel_max=16, mapping_kwargs={"num_layers": 2})
    fill_module(G, "G.")
    return G.eval()


def _sg3() -> torch.nn.Module:
    torch.manual_seed(0)
    G = stylegan3.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, channel_base=256,
                            channel_max=16, mapping_kwargs={"num_layers": 2})
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.3 * torch.randn_like(p))
        G.mapping.w_avg.normal_()
    return G.eval()


def _dcgan() -> torch.nn.Module:
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=16, img_resolution=16, ngf=8).eval()
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # eval-mode statistics that matter
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
            if isinstance(m, torch.nn.ConvTranspose2d):  # N(0, 0.02) at init gives images of about 0.01
                m.weight.mul_(10)
    return G


def _r3gan() -> torch.nn.Module:
    torch.manual_seed(0)
    G = r3gan.Generator(NoiseDimension=16, WidthPerStage=[16, 16, 8], CardinalityPerStage=[2, 2, 2],
                        BlocksPerStage=[1, 1, 1], ExpansionFactor=2, c_dim=3, ConditionEmbeddingDimension=4,
                        img_resolution=16).eval()
    with torch.no_grad():
        for p in G.parameters():  # the MSR init zeroes every residual branch's last layer
            p.add_(0.2 * torch.randn_like(p))
    return G


def _reference(G, z, c, psi):
    with torch.no_grad():
        if hasattr(G, "mapping"):
            return G.synthesis(G.mapping(z, c, truncation_psi=psi), noise_mode="const")
        return G(z, c)


CASES = {"stylegan2_cond": (lambda: _sg2(c_dim=3), 0.7), "stylegan3_t": (_sg3, 0.6), "dcgan": (_dcgan, 1.0),
         "r3gan_cond": (_r3gan, 1.0)}


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_and_torchscript_match_sgtrain(tmp_path, name):
    make, psi = CASES[name]
    G = make()
    export_onnx(G, tmp_path / "g.onnx", truncation_psi=psi)
    export_torchscript(G, tmp_path / "g.pt", truncation_psi=psi)
    gen = torch.Generator().manual_seed(1)
    z = torch.randn([5, 16], generator=gen)  # traced with batch 2: 5 checks the dynamic batch
    c = torch.nn.functional.one_hot(torch.arange(5) % max(G.c_dim, 1), G.c_dim).float() if G.c_dim else \
        torch.zeros([5, 0])
    ref = _reference(G, z, c, psi)
    assert ref.abs().max() > 0.05 and ref.std() > 0.01  # a non-trivial image
    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    assert names == (["z", "c"] if G.c_dim else ["z"]) and [o.name for o in sess.get_outputs()] == ["img"]
    feeds = {"z": z.numpy(), **({"c": c.numpy()} if G.c_dim else {})}
    onnx_img = sess.run(None, feeds)[0]
    assert onnx_img.shape == (5, 3, 16, 16) and onnx_img.dtype == np.float32
    np.testing.assert_allclose(onnx_img, ref.numpy(), atol=1e-3, rtol=0)
    ts = torch.jit.load(str(tmp_path / "g.pt"))
    ts_img = ts(z, c) if G.c_dim else ts(z)
    np.testing.assert_allclose(ts_img.numpy(), ref.numpy(), atol=1e-3, rtol=0)
    if psi != 1:  # psi is baked in: the graph differs from psi = 1
        assert (torch.from_numpy(onnx_img) - _reference(G, z, c, 1.0)).abs().max() > 1e-2


def test_refusals_leave_no_file(tmp_path):
    G = progan.Generator(resolution=16, fmap_base=64, fmap_max=16, latent_size=16)
    with pytest.raises(ExportError, match="lod buffer"):
        export_onnx(G, tmp_path / "p.onnx")
    with pytest.raises(ExportError, match="no W space"):
        export_torchscript(_dcgan(), tmp_path / "d.pt", truncation_psi=0.5)
    with pytest.raises(ExportError, match="random"):
        export_onnx(_sg2(), tmp_path / "s.onnx", noise_mode="random")
    with pytest.raises(ExportError, match="StyleGAN2 and StyleGAN3"):
        export_nvlabs({"G_ema": _dcgan()}, tmp_path / "d.pkl")
    assert list(tmp_path.iterdir()) == []


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "sgtrain.cli.export", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_writes_and_refuses(tmp_path):
    G = _dcgan()
    save_network(tmp_path / "dc", G_ema=G, G=G)
    r = _cli("torchscript", "--network", str(tmp_path / "dc.safetensors"), "--out", str(tmp_path / "g.pt"))
    assert r.returncode == 0, r.stderr
    z = torch.randn([3, 16])
    np.testing.assert_allclose(torch.jit.load(str(tmp_path / "g.pt"))(z).numpy(), _reference(G, z, None, 1).numpy(),
                               atol=1e-3, rtol=0)
    for args, reason in ((["tflite"], "unknown export format"), (["onnx", "--trunc", "0.5"], "no W space"),
                         (["nvlabs"], "StyleGAN2 and StyleGAN3")):
        out = tmp_path / "bad.out"
        r = _cli(args[0], "--network", str(tmp_path / "dc.safetensors"), "--out", str(out), *args[1:])
        assert r.returncode == 2 and reason in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dc.json", "dc.safetensors", "g.pt"]


@pytest.mark.parametrize("target", ["stylegan3", "stylegan2-ada"])
def test_nvlabs_pickle_structure_stylegan2(tmp_path, target):
    G = _sg2(c_dim=3)
    D = stylegan2.Discriminator(c_dim=3, img_resolution=16, img_channels=3, channel_base=128, channel_max=16)
    fill_module(D, "D.")
    export_nvlabs({"G_ema": G, "G": G, "D": D.eval()}, tmp_path / "n.pkl", target)
    data = (tmp_path / "n.pkl").read_bytes()
    mod = "training.networks_stylegan2" if target == "stylegan3" else "training.networks"
    globs = pickle_globals(data)
    nv = {g for g in globs if g.startswith("training.")}
    assert {f"{mod}.{c}" for c in ("Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock",
                                   "SynthesisLayer", "ToRGBLayer", "FullyConnectedLayer", "Discriminator",
                                   "DiscriminatorBlock", "DiscriminatorEpilogue", "Conv2dLayer")} <= nv
    assert all(g.startswith(mod + ".") for g in nv)
    assert globs - nv <= {"collections.OrderedDict", "torch._utils._rebuild_parameter",
                          "torch._utils._rebuild_tensor_v2", "torch.storage._load_from_bytes"}
    assert not any("persistence" in g or "sgtrain" in g for g in globs)  # no NVlabs loader call, no sgtrain class
    assert b"module_src" not in data and b"def forward" not in data and b"sgtrain" not in data
    ops = {op.name for op, _, _ in pickletools.genops(data)}
    assert "NEWOBJ" in ops and "BUILD" in ops and "REDUCE" in ops
    back = read_nvlabs_export(tmp_path / "n.pkl")  # the allow-list unpickler reads the same opcodes back
    for key, net in (("G_ema", G), ("G", G), ("D", D)):
        sd, sd_back = net.state_dict(), back[key].state_dict()
        assert list(sd) == list(sd_back)
        for k in sd:
            assert sd[k].shape == sd_back[k].shape and torch.equal(sd[k], sd_back[k]), k
    obj = _records(data)
    assert sorted(obj) == ["D", "G", "G_ema", "augment_pipe", "training_set_kwargs"]
    kw = obj["G_ema"].state["_init_kwargs"]
    if target == "stylegan3":
        assert kw["channel_base"] == 128 and kw["mapping_kwargs"] == {"num_layers": 2}
    else:
        assert kw["synthesis_kwargs"]["channel_base"] == 128 and "channel_base" not in kw
    assert obj["G_ema"].state["_init_args"] == () and "init_kwargs" not in obj["G_ema"].state
    assert obj["G_ema"].state["z_dim"] == 16 and obj["G_ema"].state["training"] is False
    z = torch.randn([2, 16])
    c = torch.nn.functional.one_hot(torch.tensor([0, 2]), 3).float()
    torch.testing.assert_close(back["G_ema"](z, c, noise_mode="const"), G(z, c, noise_mode="const"))


def test_nvlabs_pickle_structure_stylegan3(tmp_path):
    G = _sg3()
    data = nvlabs_snapshot_bytes({"G_ema": G})
    globs = pickle_globals(data)
    assert {"training.networks_stylegan3.Generator", "training.networks_stylegan3.SynthesisInput",
            "training.networks_stylegan3.SynthesisLayer"} <= globs
    assert "numpy.core.multiarray._reconstruct" in globs and "numpy._core.multiarray._reconstruct" not in globs
    obj = _records(data)
    assert obj["D"] is None and obj["G"] is not None
    mapping = obj["G_ema"].state["_modules"]["mapping"]
    assert "embed" in mapping.state and mapping.state["embed"] is None  # as NVlabs' MappingNetwork with c_dim 0
    (tmp_path / "n.pkl").write_bytes(data)
    back = read_nvlabs_export(tmp_path / "n.pkl")
    z = torch.randn([2, 16])
    torch.testing.assert_close(back["G_ema"](z, torch.zeros([2, 0])), G(z, torch.zeros([2, 0])))
    with pytest.raises(ExportError, match="no class in NVlabs"):
        nvlabs_snapshot_bytes({"G_ema": G}, target="stylegan2-ada")


def _records(data: bytes):
    import io

    from sgtrain.io.export_nvlabs import _ExportUnpickler

    return _ExportUnpickler(io.BytesIO(data)).load()
