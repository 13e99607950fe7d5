"""The image -> W+ encoder (sgtrain.latent.encoder, sgtrain-encoder) on a tiny random StyleGAN2, CPU: training on
the generator's own samples, exact resume, the portable export, and projection started from its prediction."""

import json

import pytest
import torch
from test_latent import one_thread, tiny_generator  # noqa: F401

from sgtrain.cli import encoder as encoder_cli
from sgtrain.cli import project as project_cli
from sgtrain.io import save_network
from sgtrain.latent import psnr, seeds_to_ws, synthesize
from sgtrain.latent.encoder import Encoder, encode_images, generator_info, load_encoder, save_encoder, train_encoder
from sgtrain.latent.project import project

SMALL = dict(channel_base=128, channel_max=32, hidden=64)


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


@pytest.fixture(scope="module")
def held_out(G):
    """uint8-valued float targets [4, 3, 16, 16] of held-out seeds (const noise)."""
    with torch.no_grad():
        img = synthesize(G, seeds_to_ws(G, range(100000, 100004)), noise_mode="const")
    return (img * 127.5 + 128).clamp(0, 255).round()


def test_encoder_shapes_and_errors(G):
    enc = Encoder(G.img_resolution, G.img_channels, G.num_ws, G.w_dim, **SMALL)
    out = enc(torch.zeros(2, 3, 16, 16))
    assert out.shape == (2, G.num_ws, G.w_dim)
    assert enc.init_kwargs["channel_base"] == 128 and Encoder(16, 3, 2, 4).init_kwargs["channel_base"] == 256
    with pytest.raises(ValueError, match=r"\[N, 3, 16, 16\]"):
        enc(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="power of two"):
        Encoder(24, 3, 2, 4)


def test_training_resumes_exactly_and_exports(G, tmp_path):
    losses = []
    full = train_encoder(G, tmp_path / "full", steps=12, batch=4, save_every=6, progress=False,
                         encoder_kwargs=SMALL, callback=lambda s, n, i: losses.append(i["latent_loss"]))
    assert len(losses) == 12 and all(v == v for v in losses)
    stopped = []
    train_encoder(G, tmp_path / "split", steps=12, batch=4, save_every=6, progress=False, encoder_kwargs=SMALL,
                  callback=lambda s, n, i: stopped.append(s) or s == 6)  # interrupted after step 6
    assert stopped == list(range(1, 7))
    ckpt = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert int(ckpt["step"]) == 6
    resumed = train_encoder(G, tmp_path / "split", steps=12, batch=4, save_every=6, progress=False,
                            encoder_kwargs=SMALL)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
    header = json.loads((tmp_path / "full" / "encoder.json").read_text())
    assert header["format"] == "sgtrain-encoder" and header["training_info"]["step"] == 12
    assert header["generator"] == generator_info(G) and header["init_kwargs"]["channel_base"] == 128
    loaded = load_encoder(tmp_path / "full", G=G)  # the folder, the .json or the .safetensors
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(loaded(x), full(x))
    torch.testing.assert_close(load_encoder(tmp_path / "full" / "encoder.json")(x), full(x))
    with pytest.raises(ValueError, match="same options"):
        train_encoder(G, tmp_path / "full", steps=14, batch=8, progress=False, encoder_kwargs=SMALL)
    with pytest.raises(ValueError, match="another network"):
        train_encoder(tiny_generator(seed=1), tmp_path / "full", steps=14, batch=4, progress=False,
                      encoder_kwargs=SMALL)


def test_load_checks_the_generator(G, tmp_path):
    enc = Encoder(G.img_resolution, G.img_channels, G.num_ws, G.w_dim, **SMALL)
    save_encoder(tmp_path / "e.safetensors", enc, generator_info(G))
    with pytest.raises(ValueError, match="num_ws=6"):
        load_encoder(tmp_path / "e.safetensors", G=tiny_generator(res=32))
    with pytest.warns(UserWarning, match="other weights"):
        load_encoder(tmp_path / "e.safetensors", G=tiny_generator(seed=1))
    with pytest.raises(FileNotFoundError, match="sgtrain-encoder train"):
        load_encoder(tmp_path / "missing")


def test_projection_from_the_encoder_starts_closer(G, held_out, tmp_path):
    enc = train_encoder(G, tmp_path / "enc", steps=150, batch=16, lr=3e-3, progress=False,
                        encoder_kwargs=dict(channel_base=256, channel_max=64, hidden=128))
    pred = encode_images(enc, held_out)
    with torch.no_grad():
        start_enc = psnr((synthesize(G, pred) + 1) * 127.5, held_out)
        w_avg = G.mapping.w_avg[None, None].expand(len(held_out), G.num_ws, G.w_dim)
        start_avg = psnr((synthesize(G, w_avg) + 1) * 127.5, held_out)
    assert float(start_enc.mean()) > float(start_avg.mean()) + 1, (start_enc, start_avg)
    seen = []
    out = project(G, held_out, space="w+", loss="mse", num_steps=20, init_ws=pred, w_avg_samples=500,
                  callback=lambda s, n, i: seen.append((s, float(i["dist"].mean()))))
    assert [s for s, _ in seen] == list(range(1, 21))
    torch.testing.assert_close(seen[0][1], float(((synthesize(G, pred) - (held_out / 127.5 - 1)) ** 2).mean()),
                               rtol=1e-4, atol=1e-6)  # step 1 renders the prediction itself (no w noise)
    assert float(out["psnr"].mean()) >= float(start_enc.mean())


def test_encoder_cli_and_project_init(G, tmp_path, capsys):
    net = tmp_path / "tiny"
    save_network(net, G_ema=G)
    net = str(net) + ".safetensors"
    args = ["train", "--network", net, "--out", str(tmp_path / "enc"), "--steps", "4", "--batch", "2",
            "--channel-base", "64", "--channel-max", "16", "--hidden", "32", "--device", "cpu"]
    encoder_cli.main(args)
    encoder_cli.main([*args[:6], "8", *args[7:]])  # continues to step 8
    assert json.loads((tmp_path / "enc" / "encoder.json").read_text())["training_info"]["step"] == 8
    import PIL.Image

    from sgtrain.latent import generate_images

    PIL.Image.fromarray(generate_images(G, [5])[0].numpy()).save(tmp_path / "t.png")
    encoder_cli.main(["encode", "--network", net, "--encoder", str(tmp_path / "enc"), "--target",
                      str(tmp_path / "t.png"), "--outdir", str(tmp_path / "e")])
    assert (tmp_path / "e" / "projected_w.npz").exists() and "PSNR" in capsys.readouterr().out
    project_cli.main(["--network", net, "--target", str(tmp_path / "t.png"), "--loss", "mse", "--steps", "3",
                      "--w-avg-samples", "500", "--space", "w+", "--init", "encoder", "--encoder",
                      str(tmp_path / "enc"), "--no-video", "--outdir", str(tmp_path / "p")])
    assert (tmp_path / "p" / "projected_w.npz").exists()
    with pytest.raises(SystemExit):
        project_cli.main(["--network", net, "--target", str(tmp_path / "t.png"), "--loss", "mse", "--init",
                          "encoder", "--outdir", str(tmp_path / "q")])
    assert "--encoder PATH" in capsys.readouterr().err


def test_wxh_network_trains_an_encoder_and_projects_through_it(tmp_path, capsys):
    """A W x H StyleGAN2 (16x8, init_res [2, 4]): the encoder takes its images unsquared (the last block reads the
    2x4 first level), predicts better than w_avg, is checked against the network's size, and sgtrain-encoder /
    sgtrain-project --init encoder work at 16x8."""
    import PIL.Image

    from sgtrain.latent import generate_images
    from sgtrain.latent.common import image_size

    G = tiny_generator(init_res=[2, 4])
    assert image_size(G) == (16, 8)
    with torch.no_grad():
        held = synthesize(G, seeds_to_ws(G, range(100000, 100004)), noise_mode="const")
    held = (held * 127.5 + 128).clamp(0, 255).round()
    assert tuple(held.shape) == (4, 3, 8, 16)
    enc = train_encoder(G, tmp_path / "enc", steps=150, batch=16, lr=3e-3, progress=False,
                        encoder_kwargs=dict(channel_base=256, channel_max=64, hidden=128))
    assert (enc.img_width, enc.img_height) == (16, 8) and enc.init_kwargs["img_height"] == 8
    assert enc.fc.in_features == 64 * 2 * 4  # ch(4) channels on the 2x4 first level
    assert "img_width" not in Encoder(16, 3, 6, 32).init_kwargs  # square encoders: the keywords they always had
    pred = encode_images(enc, held)
    with torch.no_grad():
        start_enc = psnr((synthesize(G, pred) + 1) * 127.5, held)
        w_avg = G.mapping.w_avg[None, None].expand(len(held), G.num_ws, G.w_dim)
        start_avg = psnr((synthesize(G, w_avg) + 1) * 127.5, held)
    assert float(start_enc.mean()) > float(start_avg.mean()) + 1, (start_enc, start_avg)
    with pytest.raises(ValueError, match=r"\[N, 3, 8, 16\]"):
        enc(torch.zeros(1, 3, 16, 16))
    x = torch.rand(2, 3, 8, 16) * 2 - 1
    torch.testing.assert_close(load_encoder(tmp_path / "enc", G=G)(x), enc(x))
    with pytest.raises(ValueError, match="img_height=8; this network has img_height=16"):
        load_encoder(tmp_path / "enc", G=tiny_generator())
    with pytest.raises(ValueError, match="16x6 input.*multiple of 4"):
        Encoder(16, 3, 6, 32, img_width=16, img_height=6)

    net = tmp_path / "wide"
    save_network(net, G_ema=G)
    net = str(net) + ".safetensors"
    encoder_cli.main(["train", "--network", net, "--out", str(tmp_path / "cli"), "--steps", "2", "--batch", "2",
                      "--channel-base", "64", "--channel-max", "16", "--hidden", "32", "--device", "cpu"])
    assert json.loads((tmp_path / "cli" / "encoder.json").read_text())["init_kwargs"]["img_width"] == 16
    PIL.Image.fromarray(generate_images(G, [5])[0].numpy()).resize((40, 20)).save(tmp_path / "t.png")
    encoder_cli.main(["encode", "--network", net, "--encoder", str(tmp_path / "enc"), "--target",
                      str(tmp_path / "t.png"), "--outdir", str(tmp_path / "e")])
    assert PIL.Image.open(tmp_path / "e" / "00_t_enc.png").size == (16, 8) and "PSNR" in capsys.readouterr().out
    project_cli.main(["--network", net, "--target", str(tmp_path / "t.png"), "--loss", "mse", "--steps", "3",
                      "--w-avg-samples", "500", "--space", "w+", "--init", "encoder", "--encoder",
                      str(tmp_path / "enc"), "--no-video", "--outdir", str(tmp_path / "p")])
    assert PIL.Image.open(tmp_path / "p" / "proj.png").size == (16, 8)
