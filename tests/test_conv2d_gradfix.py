"""sgtrain.ops.conv2d_gradfix: F.conv2d's values, gradients of every order, and the no_weight_gradients switch.

The switch (``train.pl_no_weight_grad``, and R1 always, as NVlabs) must change no number: R1 and path-length phases
of StyleGAN2Loss give bitwise the same losses and parameter gradients with it on and off, and the same as PyTorch's
own convolution (float tolerance for second-order terms). Speed is measured by scripts/bench_gradfix.py, not here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sgtrain.core.regularizers import r1_penalty
from sgtrain.models.stylegan2 import Discriminator, Generator
from sgtrain.models.stylegan2.loss import StyleGAN2Loss
from sgtrain.ops import conv2d_gradfix as gf

RES = 8

# (transposed, stride, padding, output_padding, groups): the cases conv2d_resample produces, and a few more
CASES = [
    (False, 1, 1, 0, 1),
    (False, 2, 0, 0, 2),
    (False, 1, (0, 1), 0, 4),
    (True, 2, 0, 0, 1),
    (True, 2, 1, 1, 2),
    (True, 1, (1, 0), 0, 1),
]


def _make(case, dtype=torch.float32, seed=0, size=(2, 4, 8, 7, 6)):
    transposed, stride, padding, output_padding, groups = case
    g = torch.Generator().manual_seed(seed)
    n, cin, cout, h, w = size
    x = torch.randn(n, cin, h, w, generator=g, dtype=dtype).requires_grad_(True)
    w_shape = (cin, cout // groups, 3, 3) if transposed else (cout, cin // groups, 3, 3)
    w = torch.randn(w_shape, generator=g, dtype=dtype).requires_grad_(True)
    b = torch.randn(cout, generator=g, dtype=dtype).requires_grad_(True)
    if transposed:
        kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups)
        return x, w, b, (lambda *a: F.conv_transpose2d(*a, **kw)), (lambda *a: gf.conv_transpose2d(*a, **kw))
    kw = dict(stride=stride, padding=padding, groups=groups)
    return x, w, b, (lambda *a: F.conv2d(*a, **kw)), (lambda *a: gf.conv2d(*a, **kw))


@pytest.mark.parametrize("case", CASES)
def test_values_and_first_order_gradients_equal_torch_bitwise(case):
    x, w, b, native, fixed = _make(case)
    y0, y1 = native(x, w, b), fixed(x, w, b)
    assert y1.grad_fn is not None and "Conv" in type(y1.grad_fn).__name__ and torch.equal(y0, y1)
    g = torch.randn_like(y0)
    want = torch.autograd.grad(y0, [x, w, b], g, retain_graph=True)
    for create_graph in (False, True):  # one fused call / the three differentiable Functions
        got = torch.autograd.grad(y1, [x, w, b], g, retain_graph=True, create_graph=create_graph)
        assert all(torch.equal(a, c) for a, c in zip(want, got))
        assert got[0].requires_grad == got[1].requires_grad == create_graph  # (gx depends on w, gw on x)


@pytest.mark.parametrize("case", CASES)
def test_second_order_gradients_match_torch(case):
    x, w, b, native, fixed = _make(case)

    def r1_like(fn):  # grad w.r.t. x with create_graph, then backprop a function of it into w, b and x
        (gx,) = torch.autograd.grad(fn(x, w, b).square().sum(), [x], create_graph=True)
        return torch.autograd.grad(gx.square().sum(), [w, b, x])

    for a, c in zip(r1_like(native), r1_like(fixed)):
        torch.testing.assert_close(c, a, rtol=1e-5, atol=1e-5 * float(a.abs().max()))


@pytest.mark.parametrize("case", [CASES[1], CASES[4]])
def test_gradcheck_and_gradgradcheck(case):
    x, w, b, _, fixed = _make(case, dtype=torch.float64, size=(1, 2, 2, 4, 3))
    assert torch.autograd.gradcheck(fixed, (x, w, b), fast_mode=True)
    assert torch.autograd.gradgradcheck(fixed, (x, w, b), fast_mode=True)

    def input_grad(x, w, b):  # third order: gradgradcheck of a first derivative
        (gx,) = torch.autograd.grad(fixed(x, w, b).square().sum(), [x], create_graph=True)
        return gx

    assert torch.autograd.gradgradcheck(input_grad, (x, w, b), fast_mode=True)


def test_no_weight_gradients_skips_conv_weight_gradients_only():
    x, w, b, _, fixed = _make(CASES[0])
    y = fixed(x, w, b)
    with gf.no_weight_gradients():
        assert gf.weight_gradients_disabled()
        gx, gw, gb = torch.autograd.grad(y.sum(), [x, w, b], allow_unused=True, retain_graph=True)
    assert not gf.weight_gradients_disabled()
    assert gw is None and gx is not None and gb is not None
    with gf.no_weight_gradients(False):  # False leaves the setting alone (NVlabs' signature)
        assert torch.autograd.grad(y.sum(), [w])[0] is not None
    # inference and frozen inputs take the plain op (no custom autograd node)
    with torch.no_grad():
        assert torch.equal(fixed(x, w, b), F.conv2d(x, w, b, padding=1))
    assert fixed(x.detach(), w.detach(), None).grad_fn is None


def test_context_restores_flag_after_an_error():
    with pytest.raises(RuntimeError), gf.no_weight_gradients():
        raise RuntimeError("boom")
    assert not gf.weight_gradients_disabled()


def _nets(seed=0, fused_modconv_default="inference_only"):
    torch.manual_seed(seed)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=RES, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), channel_base=64, channel_max=8, num_fp16_res=0, conv_clamp=None,
                  fused_modconv_default=fused_modconv_default)
    D = Discriminator(c_dim=0, img_resolution=RES, img_channels=3, channel_base=64, channel_max=8, num_fp16_res=0,
                      conv_clamp=None, epilogue_kwargs=dict(mbstd_group_size=2))
    return G.train().requires_grad_(False), D.train().requires_grad_(False)


def _phase(loss, module, phase, seed, batch):
    for p in list(loss.G.parameters()) + list(loss.D.parameters()):
        p.grad = None
    module.requires_grad_(True)
    torch.manual_seed(seed)
    stats = loss.accumulate_gradients(phase=phase, cur_nimg=0, gain=4, **batch)
    module.requires_grad_(False)
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    return {k: v.detach().clone() for k, v in stats.items()}, grads


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(5)
    return dict(real_img=torch.rand(4, 3, RES, RES) * 2 - 1, real_c=torch.zeros(4, 0), gen_z=torch.randn(4, 8),
                gen_c=torch.zeros(4, 0))


class _Counter:
    def __init__(self, monkeypatch):
        self.calls = 0
        real = gf._grad_weight

        def counted(*args):
            self.calls += 1
            return real(*args)

        monkeypatch.setattr(gf, "_grad_weight", counted)


@pytest.mark.parametrize("fused_modconv", ["inference_only", True])
def test_path_length_phase_identical_with_and_without_pl_no_weight_grad(batch, monkeypatch, fused_modconv):
    """NVlabs' training setting (regular convs) and fused modulated convs, whose per-sample weights carry ws."""
    counter = _Counter(monkeypatch)
    runs = {}
    for flag in (False, True):
        G, D = _nets(fused_modconv_default=fused_modconv)
        loss = StyleGAN2Loss(G, D, pl_weight=2, pl_batch_shrink=2, style_mixing_prob=0, pl_no_weight_grad=flag)
        counter.calls = 0
        runs[flag] = (*_phase(loss, G, "Greg", 7, batch), loss.pl_mean.clone(), counter.calls)
    (s0, g0, m0, n0), (s1, g1, m1, n1) = runs[False], runs[True]
    if fused_modconv is True:  # every synthesis conv is fused (torch's own op): nothing for the switch to skip
        assert n1 == n0
    else:
        assert n1 < n0, f"the switch skipped no weight gradient ({n0} vs {n1} weight-gradient kernels)"
    assert torch.equal(m0, m1) and s0.keys() == s1.keys()
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    assert g0.keys() == g1.keys() and "synthesis.b8.conv1.weight" in g0
    assert all(torch.equal(g0[k], g1[k]) for k in g0)


def test_r1_phase_identical_with_and_without_the_switch(batch, monkeypatch):
    counter = _Counter(monkeypatch)
    out = {}
    for flag in (False, True):
        monkeypatch.setattr(
            "sgtrain.models.stylegan2.loss.r1_penalty",
            lambda img, logits, _flag=flag: r1_penalty(img, logits, no_weight_grad=_flag),
        )
        G, D = _nets()
        loss = StyleGAN2Loss(G, D, r1_gamma=10)
        counter.calls = 0
        out[flag] = (*_phase(loss, D, "Dreg", 3, batch), counter.calls)
    (s0, g0, n0), (s1, g1, n1) = out[False], out[True]
    assert n1 < n0 and s0["Loss/r1_penalty"].item() > 0
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    assert g0.keys() == g1.keys() and "b8.conv0.weight" in g0
    assert all(torch.equal(g0[k], g1[k]) for k in g0)


def test_r1_phase_matches_torch_convolution(batch, monkeypatch):
    """The custom op against PyTorch's own convolution (forced by making the op think nothing records a graph)."""
    runs = []
    for plain in (False, True):
        if plain:
            monkeypatch.setattr(gf, "_records_graph", lambda *t: False)
        G, D = _nets()
        runs.append(_phase(StyleGAN2Loss(G, D, r1_gamma=10), D, "Dreg", 3, batch))
    (s0, g0), (s1, g1) = runs
    torch.testing.assert_close(s0["Loss/r1_penalty"], s1["Loss/r1_penalty"], rtol=1e-5, atol=0)
    assert g0.keys() == g1.keys()
    for k in g0:
        torch.testing.assert_close(g0[k], g1[k], rtol=1e-4, atol=1e-6, msg=k)


@pytest.mark.gpu
def test_cuda_r1_identical_with_and_without_the_switch_and_close_to_torch():
    dev = torch.device("cuda")
    torch.manual_seed(0)
    D = Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=32,
                      num_fp16_res=0, conv_clamp=None).to(dev)
    x = torch.randn(4, 3, 16, 16, device=dev)
    grads = []
    flags = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32
    # deterministic kernels, so that "on" and "off" can be compared bitwise; no TF32, so torch's path is close
    cudnn = torch.backends.cudnn
    cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = True, False, False
    for mode in ("off", "on", "torch"):
        D.zero_grad(set_to_none=True)
        img = x.detach().requires_grad_(True)
        with pytest.MonkeyPatch.context() as mp:
            if mode == "torch":
                mp.setattr(gf, "_records_graph", lambda *t: False)
            r1_penalty(img, D(img, None), no_weight_grad=(mode == "on")).mean().backward()
        grads.append({n: p.grad.clone() for n, p in D.named_parameters() if p.grad is not None})
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = flags
    off, on, ref = grads
    assert off.keys() == on.keys() == ref.keys()
    for k in off:
        assert torch.equal(off[k], on[k]), k
        torch.testing.assert_close(off[k], ref[k], rtol=1e-3, atol=1e-5, msg=k)


def test_autocast_bfloat16_matches_torch_and_gives_float32_gradients():
    """Under autocast the op casts its operands as autocast casts F.conv2d's, in the graph, so that its backward sees
    one dtype and the double backward (R1) reaches the float32 weight; without that, CPU bfloat16 autocast failed
    with 'expected Float but found BFloat16' in convolution_backward (scripts/bench_train.py --precision bf16), and
    with the cast inside the Function the second-order weight gradient lost a term (50 % off)."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    w = torch.randn(6, 4, 3, 3, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    outs = []
    for fn in (gf.conv2d, F.conv2d):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = fn(x, w, b, padding=1)
            (gx,) = torch.autograd.grad(y.square().sum(), [x], create_graph=True)
        gw, gb = torch.autograd.grad(gx.square().sum(), [w, b])
        assert y.dtype == torch.bfloat16 and gx.dtype == gw.dtype == gb.dtype == torch.float32
        outs.append((y.float(), gx, gw, gb))
    # Both sides round to bfloat16 (8 significant bits, a relative step of 2**-8 = 3.9e-3) at different points of
    # the same sums, and oneDNN picks its bf16 kernels by the CPU's instruction set: 1e-3 held on one x86-64 CPU and
    # gave 1.12e-3 on another. 8e-3 (two bf16 steps) fits the arithmetic and still catches the lost term (50 %).
    for ours, theirs in zip(*outs):
        assert float((ours - theirs).norm() / theirs.norm()) < 8e-3
