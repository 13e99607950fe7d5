"""sgtrain-recipe: the shipped character pipeline on two tiny StyleGAN2 networks equals the same steps run through
the single commands; every step type; clear errors for bad recipes."""

import os
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from test_explore import ProGANLike
from test_latent import one_thread, tiny_generator  # noqa: F401

from sgtrain.cli import blend, generate, project
from sgtrain.cli import recipe as recipe_cli
from sgtrain.io import save_network
from sgtrain.latent import make_grid, render_ws, save_ws, seeds_to_ws, sefa
from sgtrain.latent.directions import Direction
from sgtrain.latent.recipe import RecipeError, check_recipe, run_recipe

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "character_pipeline.yaml"


def png(path) -> np.ndarray:
    return np.asarray(PIL.Image.open(path))


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """Two 32x32 networks (num_ws 8, like the quickstart's) from different seeds, as portable files."""
    d = tmp_path_factory.mktemp("nets")
    G1, G2 = tiny_generator(res=32, seed=0), tiny_generator(res=32, seed=1)
    save_network(d / "emoji", G_ema=G1)
    save_network(d / "second", G_ema=G2)
    return str(d / "emoji.safetensors"), str(d / "second.safetensors"), G1, G2


def test_character_pipeline_equals_the_single_commands(nets, tmp_path, capsys):
    p1, p2, G1, G2 = nets
    out = tmp_path / "out"
    recipe_cli.main([str(EXAMPLE), f"networks.emoji={p1}", f"networks.second={p2}", f"out={out}", "device=cpu",
                     "steps.projected.steps=5", "steps.projected.w_avg_samples=200"])
    log = capsys.readouterr().out
    assert "sheet (sheet): 1 image" in log and "PSNR" in log
    ref = tmp_path / "ref"
    labels = [f"seed{s:04d}" for s in range(8)]

    # 1. characters = sgtrain-generate --seeds 0-7 --trunc 0.7
    generate.main(["--network", p1, "--seeds", "0-7", "--trunc", "0.7", "--outdir", str(ref / "gen"), "--device",
                   "cpu"])
    for s in labels:
        assert (out / "characters" / f"{s}.png").read_bytes() == (ref / "gen" / f"{s}.png").read_bytes()
    assert np.array_equal(np.load(out / "characters" / "w.npz")["w"], seeds_to_ws(G1, range(8), 0.7).numpy())

    # 3. restyled = sgtrain-blend --w characters/w.npz,42 --trunc 0.7 --layers 0-5:a,6-end:b
    blend.main(["--network", p1, "--w", f"{out}/characters/w.npz,42", "--trunc", "0.7", "--layers", "0-5:a,6-end:b",
                "--outdir", str(ref / "blend"), "--device", "cpu"])
    for i, s in enumerate(labels):
        assert (out / "restyled" / f"{s}.png").read_bytes() == (ref / "blend" / f"blend{i:02d}.png").read_bytes()
    assert np.array_equal(np.load(out / "restyled" / "w.npz")["w"], np.load(ref / "blend" / "blend_w.npz")["w"])

    # 4. cropped = the central 75% (24x24 at (4, 4)) resized to 32x32 with Lanczos
    for i, s in enumerate(labels):
        want = PIL.Image.open(ref / "blend" / f"blend{i:02d}.png").crop((4, 4, 28, 28)).resize((32, 32),
                                                                                             PIL.Image.LANCZOS)
        assert np.array_equal(png(out / "cropped" / f"{s}.png"), np.asarray(want))

    # 5. projected = sgtrain-project --network second --target cropped/*.png --space w+ --steps 5 --loss mse
    project.main(["--network", p2, "--target", *[str(out / "cropped" / f"{s}.png") for s in labels], "--space", "w+",
                  "--steps", "5", "--loss", "mse", "--w-avg-samples", "200", "--no-video", "--outdir",
                  str(ref / "proj"), "--device", "cpu"])
    for s in labels:
        assert (out / "projected" / f"{s}.png").read_bytes() == (ref / "proj" / s / "proj.png").read_bytes()
    assert np.array_equal(np.load(out / "projected" / "w.npz")["w"], np.load(ref / "proj" / "projected_w.npz")["w"])

    # 6. remixed = sgtrain-blend --mean of (projected, seed 5), then --layers 0-3:a,4-5:b,6-end:a
    blend.main(["--network", p2, "--w", f"{ref}/proj/projected_w.npz,5", "--trunc", "0.7", "--mean", "--outdir",
                str(ref / "mean"), "--device", "cpu"])
    blend.main(["--network", p2, "--w", f"{ref}/proj/projected_w.npz,{ref}/mean/blend_w.npz", "--layers",
                "0-3:a,4-5:b,6-end:a", "--outdir", str(ref / "remix"), "--device", "cpu"])
    for i, s in enumerate(labels):
        assert (out / "remixed" / f"{s}.png").read_bytes() == (ref / "remix" / f"blend{i:02d}.png").read_bytes()
    assert np.array_equal(np.load(out / "remixed" / "w.npz")["w"], np.load(ref / "remix" / "blend_w.npz")["w"])
    assert not np.array_equal(png(out / "remixed" / "seed0000.png"), png(out / "projected" / "seed0000.png"))

    # 7. sheet: one row per step
    rows = [[png(ref / "gen" / f"{s}.png") for s in labels],
            [png(ref / "blend" / f"blend{i:02d}.png") for i in range(8)],
            [png(out / "cropped" / f"{s}.png") for s in labels],
            [png(ref / "proj" / s / "proj.png") for s in labels],
            [png(ref / "remix" / f"blend{i:02d}.png") for i in range(8)]]
    want = make_grid(np.stack([im for row in rows for im in row]), 5, 8)
    assert np.array_equal(png(out / "sheet" / "sheet.png"), want)
    assert (out / "recipe.yaml").exists() and p2 in (out / "recipe.yaml").read_text()


def test_load_direction_resize_save_and_grid_steps(nets, tmp_path):
    p1, _, G1, _ = nets
    ws = seeds_to_ws(G1, [3, 4], 0.8)
    save_ws(tmp_path / "stored.npz", ws)
    d = torch.randn(32)
    np.savez(tmp_path / "attr.npz", direction=d.numpy(), layers=np.array([0, 1, 2, 3]), name="attr")
    cfg = {
        "networks": {"emoji": p1}, "out": str(tmp_path / "out"), "device": "cpu",
        "steps": {
            "stored": {"type": "load", "path": str(tmp_path / "stored.npz")},
            "edited": {"type": "direction", "input": "stored", "file": str(tmp_path / "attr.npz"), "strength": 2.5},
            "sefa2": {"type": "direction", "input": "stored", "sefa": 2, "sefa_layers": "coarse", "strength": -3,
                      "layers": "0-5"},
            "small": {"type": "resize", "input": "edited", "size": 16},
            "grid": {"type": "sheet", "inputs": ["edited"], "grid": "1x2"},
            "export": {"type": "save", "input": "sefa2", "dir": str(tmp_path / "export"), "images": False},
        },
    }
    res = run_recipe(cfg, log=lambda s: None)
    generate.main(["--network", p1, "--projected-w", str(tmp_path / "stored.npz"), "--outdir", str(tmp_path / "g"),
                   "--device", "cpu"])
    for i in range(2):
        assert (tmp_path / "out" / "stored" / f"w{i:02d}.png").read_bytes() == (tmp_path / "g" /
                                                                                f"proj{i:02d}.png").read_bytes()
    want = Direction(d, "w", [0, 1, 2, 3]).apply(ws, 2.5)
    assert torch.equal(res["edited"].ws, want)
    assert np.array_equal(res["edited"].images, render_ws(G1, want).numpy())
    s = sefa(G1, [0, 1, 2, 3])  # coarse of a 32x32 network
    want = Direction(s["directions"][2], "w").apply(ws, -3.0, range(6))
    assert torch.equal(res["sefa2"].ws, want) and not torch.equal(want[:, 6:] - ws[:, 6:], want[:, :6] - ws[:, :6])
    assert res["small"].images.shape == (2, 16, 16, 3)
    assert png(tmp_path / "out" / "grid" / "sheet.png").shape == (32, 64, 3)
    assert np.array_equal(png(tmp_path / "out" / "grid" / "sheet.png"), np.concatenate(list(res["edited"].images), 1))
    assert sorted(os.listdir(tmp_path / "export")) == ["w.npz"]
    assert np.array_equal(np.load(tmp_path / "export" / "w.npz")["w"], want.numpy())


def test_z_only_networks_sample_and_refuse_w_steps(tmp_path):
    G = ProGANLike().eval()
    cfg = {"networks": {"pg": "unused"}, "out": str(tmp_path / "o"),
           "steps": {"faces": {"type": "sample", "seeds": "0-2"},
                     "mixed": {"type": "mix", "layers": "0-0:faces"}}}
    with pytest.raises(RecipeError, match=r"step 'mixed' \(mix\): this network has no W space \(ProGANLike\): "
                                          "mixing layers needs a style-based generator"):
        run_recipe(cfg, networks={"pg": G}, log=lambda s: None)
    assert sorted(os.listdir(tmp_path / "o" / "faces")) == ["seed0000.png", "seed0001.png", "seed0002.png", "z.npz"]


@pytest.mark.parametrize("steps, message", [
    ({"a": {"type": "smaple", "seeds": 1}}, "unknown type 'smaple'; did you mean 'sample'?"),
    ({"a": {"type": "sample", "sedes": 1}}, "has no key 'sedes'; did you mean 'seeds'?"),
    ({"a": {"type": "sample"}}, "step 'a' (sample) needs seeds"),
    ({"a": {"type": "sample", "seeds": 1}, "b": {"type": "crop", "input": "aa", "center": 0.5}},
     "refers to 'aa' as input, which is not an earlier step (did you mean 'a'?). Earlier steps: a"),
    ({"b": {"type": "crop", "input": "a", "center": 0.5}, "a": {"type": "sample", "seeds": 1}},
     "it comes later: steps run in order"),
    ({"a": {"type": "sample", "seeds": 1}, "b": {"type": "crop", "input": "a", "center": 0.5},
      "c": {"type": "mix", "layers": "0-end:b"}}, "needs latents from 'b', but a crop step has only images"),
    ({"a": {"type": "sample", "seeds": 1, "network": "emojj"}}, "names network 'emojj'; did you mean 'emoji'?"),
    ({"a": {"type": "sample", "seeds": 1}, "b": {"type": "direction", "input": "a", "strength": 1}},
     "exactly one of file: PATH.npz or sefa: INDEX"),
    ({"a": {"type": "sample", "seeds": 1}, "b": {"type": "mix", "layers": "0-3:a,4-end:mean"}},
     "uses 'mean' in layers but gives no mean"),
    ({"a": {"type": "sample", "seeds": 1}, "b": {"type": "mix", "layers": "0-3 a"}}, "cannot parse '0-3 a'"),
    ({"a-b": {"type": "sample", "seeds": 1}}, "must be an identifier"),
])
def test_bad_recipes_are_named(steps, message):
    with pytest.raises(RecipeError) as e:
        check_recipe({"networks": {"emoji": "x", "second": "y"} if "emojj" in str(steps) else {"emoji": "x"},
                      "steps": steps})
    assert message in str(e.value)


def test_cli_errors_dry_run_and_overrides(nets, tmp_path, capsys):
    p1, _, _, _ = nets
    (tmp_path / "r.yaml").write_text(f"networks:\n  emoji: {p1}\nstep:\n  a: {{type: sample, seeds: 1}}\n")
    with pytest.raises(SystemExit) as e:
        recipe_cli.main([str(tmp_path / "r.yaml")])
    assert e.value.code == 2 and "unknown recipe key 'step'; did you mean 'steps'?" in capsys.readouterr().err
    (tmp_path / "ok.yaml").write_text(f"networks:\n  emoji: {p1}\nsteps:\n  a: {{type: sample, seeds: 1, psi: 0.5}}\n")
    recipe_cli.main([str(tmp_path / "ok.yaml"), "steps.a.seeds=4-5", "--dry-run"])
    out = capsys.readouterr().out
    assert "a: sample(" in out and "seeds=4-5" in out and "psi=0.5" in out and "recipe OK" in out
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        recipe_cli.main([str(tmp_path / "ok.yaml"), "steps.a.psi"])
    assert "key=value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        recipe_cli.main([str(tmp_path / "ok.yaml"), f"out={tmp_path / 'o'}", "steps.a.class=1"])
    assert "step 'a' (sample): this network is unconditional" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("networks: [unclosed\n")
    with pytest.raises(SystemExit):
        recipe_cli.main([str(tmp_path / "bad.yaml")])
    assert "recipe" in capsys.readouterr().err
