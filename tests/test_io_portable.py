"""Portable network files (safetensors + JSON): bit-identical round trip, run directories, checkpoints, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from sgtrain.cli.convert import main as convert_main
from sgtrain.io import NetworkFileError, UnsupportedNetworkError, load_network, save_network
from sgtrain.models.stylegan2 import Discriminator, Generator

FIX = Path(__file__).parent / "fixtures" / "io"
G_KW = dict(z_dim=8, c_dim=3, w_dim=8, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
            channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=256)
D_KW = dict(c_dim=3, img_resolution=16, img_channels=3, channel_base=128, channel_max=16, num_fp16_res=0,
            conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=2))


def _perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if not name.endswith("resample_filter"):
                t.add_(0.3 * torch.randn(t.shape, generator=g))
    return module.eval()


@pytest.fixture(scope="module")
def nets() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"G_ema": _perturbed(Generator(**G_KW), 1), "G": _perturbed(Generator(**G_KW), 2),
            "D": _perturbed(Discriminator(**D_KW), 3)}


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    z = torch.randn([4, 8], generator=g)
    c = torch.eye(3)[torch.tensor([0, 1, 2, 0])]
    img = torch.randn([4, 3, 16, 16], generator=g)
    return z, c, img


def _outputs(n: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    z, c, img = _inputs()
    with torch.no_grad():
        return {
            "G_ema": n["G_ema"](z, c, truncation_psi=0.7, noise_mode="const"),
            "G": n["G"](z, c, noise_mode="const"),
            "D": n["D"](img, c),
        }


@pytest.mark.parametrize("suffix", ["", ".safetensors", ".json"])
def test_round_trip_is_bit_identical(tmp_path: Path, nets: dict, suffix: str) -> None:
    st, js = save_network(tmp_path / "sub" / f"net{suffix}", nets["G_ema"], G=nets["G"], D=nets["D"],
                          augment_p=0.125, training_info={"kimg": 12}, note="x")
    assert st == tmp_path / "sub" / "net.safetensors" and js == tmp_path / "sub" / "net.json"
    header = json.loads(js.read_text())
    assert header["networks"]["G_ema"]["class"] == "sgtrain.models.stylegan2.networks.Generator"
    assert header["networks"]["D"]["init_kwargs"] == nets["D"].init_kwargs
    loaded = load_network(tmp_path / "sub" / f"net{suffix}")
    before, after = _outputs(nets), _outputs(loaded)
    for key in ("G_ema", "G", "D"):
        assert torch.equal(before[key], after[key]), key
        sd0, sd1 = nets[key].state_dict(), loaded[key].state_dict()
        assert list(sd0) == list(sd1) and all(torch.equal(sd0[k], sd1[k]) for k in sd0)
        assert type(loaded[key]) is type(nets[key]) and loaded[key].init_kwargs == nets[key].init_kwargs
    assert loaded["augment_p"] == 0.125
    assert loaded["training_info"]["kimg"] == 12 and loaded["training_info"]["note"] == "x"
    assert not any(p.requires_grad for p in loaded["G_ema"].parameters())


def test_lone_safetensors_opens_from_its_metadata(tmp_path: Path, nets: dict) -> None:
    st, js = save_network(tmp_path / "net", nets["G_ema"])
    js.unlink()
    loaded = load_network(st)
    assert set(loaded) == {"G_ema", "training_info"}
    assert torch.equal(_outputs(nets)["G_ema"], _outputs({**nets, "G_ema": loaded["G_ema"]})["G_ema"])


def test_json_cannot_name_other_classes(tmp_path: Path, nets: dict) -> None:
    _, js = save_network(tmp_path / "net", nets["G_ema"])
    header = json.loads(js.read_text())
    header["networks"]["G_ema"]["class"] = "os.system"
    js.write_text(json.dumps(header))
    with pytest.raises(UnsupportedNetworkError, match="os.system"):
        load_network(js)


def test_wrong_tensors_are_named(tmp_path: Path, nets: dict) -> None:
    _, js = save_network(tmp_path / "net", nets["G_ema"])
    header = json.loads(js.read_text())
    header["networks"]["G_ema"]["init_kwargs"]["channel_max"] = 32
    js.write_text(json.dumps(header))
    with pytest.raises(UnsupportedNetworkError, match="shape mismatches"):
        load_network(js)


def test_missing_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_network(tmp_path / "nothing.pkl")
    with pytest.raises(NetworkFileError, match="no network-snapshot"):
        load_network(tmp_path)


def test_run_directory_opens_newest_snapshot_then_last_ckpt(tmp_path: Path, nets: dict) -> None:
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    torch.save(_lightning_checkpoint(nets), ckpt_dir / "last.ckpt")
    assert load_network(tmp_path)["training_info"]["source"] == "lightning-checkpoint"
    save_network(tmp_path / "network-snapshot-000012", nets["G_ema"], kimg=12)
    save_network(tmp_path / "network-snapshot-000004", nets["G"], kimg=4)
    loaded = load_network(tmp_path)
    assert loaded["training_info"]["kimg"] == 12
    assert torch.equal(_outputs(nets)["G_ema"], _outputs({**nets, "G_ema": loaded["G_ema"]})["G_ema"])


def _lightning_checkpoint(nets: dict) -> dict:
    """What Lightning writes for sgtrain.training.module.GANModule (state_dict prefixes, hyper_parameters)."""
    sd = {f"{name}.{k}": v for name in ("G", "D", "G_ema") for k, v in nets[name].state_dict().items()}
    sd["loss.pl_mean"] = torch.zeros([])
    return {
        "epoch": 0, "global_step": 40, "pytorch-lightning_version": "2.6.6",
        "state_dict": sd,
        "hyper_parameters": {"G_kwargs": dict(G_KW), "D_kwargs": dict(D_KW), "arch": "stylegan2", "batch": 4},
        "sgtrain": {"cur_nimg": 3200, "kimg": 3.2, "pl_mean": 0.5},
    }


def test_lightning_checkpoint_opens(tmp_path: Path, nets: dict) -> None:
    torch.save(_lightning_checkpoint(nets), tmp_path / "last.ckpt")
    loaded = load_network(tmp_path / "last.ckpt")
    before, after = _outputs(nets), _outputs(loaded)
    for key in ("G_ema", "G", "D"):
        assert torch.equal(before[key], after[key]), key
    assert loaded["training_info"]["kimg"] == 3.2 and loaded["training_info"]["global_step"] == 40


def test_training_module_checkpoint_layout(tmp_path: Path) -> None:
    """The real GANModule's checkpoint (state_dict, hyper-parameters, its 'sgtrain' entry) opens."""
    module_mod = pytest.importorskip("sgtrain.training.module")
    from sgtrain.models.stylegan2.loss import StyleGAN2Loss

    m = module_mod.GANModule(G=Generator(**G_KW), D=Discriminator(**D_KW), loss=StyleGAN2Loss, batch=4)
    ckpt = {"state_dict": m.state_dict(), "hyper_parameters": dict(m.hparams)}
    m.on_save_checkpoint(ckpt)
    assert ckpt["sgtrain"]["networks"]["G"]["class"] == "sgtrain.models.stylegan2.networks.Generator"
    torch.save(ckpt, tmp_path / "x.ckpt")
    loaded = load_network(tmp_path / "x.ckpt")
    ours = {"G_ema": m.G_ema.eval(), "G": m.G.eval(), "D": m.D.eval()}
    before, after = _outputs(ours), _outputs(loaded)
    for key in ("G_ema", "G", "D"):
        assert torch.equal(before[key], after[key]), key


def test_convert_cli_nvlabs_pickle_to_portable(tmp_path: Path) -> None:
    src = FIX / "nvlabs_stylegan3_tiny_cond_orig.pkl"
    assert convert_main([str(src), str(tmp_path / "conv")]) == 0
    a, b = load_network(src), load_network(tmp_path / "conv.json")
    z = torch.randn([2, 16])
    c = torch.eye(4)[:2]
    img = torch.randn([2, 3, 16, 16])
    with torch.no_grad():
        assert torch.equal(a["G_ema"](z, c, noise_mode="const"), b["G_ema"](z, c, noise_mode="const"))
        assert torch.equal(a["D"](img, c), b["D"](img, c))
    assert b["augment_p"] == a["augment_p"] == 0.3125
    assert b["training_info"]["converted_from"] == str(src)
    # The converted pair needs neither NVlabs' code nor pickle; a copy elsewhere opens too.
    shutil.copy(tmp_path / "conv.safetensors", tmp_path / "copy.safetensors")
    shutil.copy(tmp_path / "conv.json", tmp_path / "copy.json")
    assert set(load_network(tmp_path / "copy")) >= {"G_ema", "G", "D"}
