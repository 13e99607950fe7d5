"""Reference ops: values against independent naive implementations, first and second-order gradients.

Covers sgtrain.ops.bias_act, sgtrain.ops.upfirdn2d (setup_filter, upfirdn2d, filter2d, upsample2d, downsample2d),
sgtrain.ops.conv2d_resample and sgtrain.nn.modulated_conv2d, plus the impl dispatch contract with sgtrain.ops.fused.
"""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sgtrain.nn.modconv import modulated_conv2d
from sgtrain.ops import _backend
from sgtrain.ops.bias_act import activation_funcs, bias_act
from sgtrain.ops.conv2d_resample import conv2d_resample
from sgtrain.ops.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d


def _gradcheck(fn, inputs):
    # fast_mode checks random projections of the Jacobian: same failure detection, far fewer evaluations.
    return torch.autograd.gradcheck(fn, inputs, fast_mode=True)


def _gradgradcheck(fn, inputs):
    return torch.autograd.gradgradcheck(fn, inputs, fast_mode=True)


# ---------------------------------------------------------------------------------------------------------------
# bias_act

_EXPECTED = {  # activation: (numpy function of (x, alpha), default alpha, default gain)
    "linear": (lambda x, a: x, 0.0, 1.0),
    "relu": (lambda x, a: np.maximum(x, 0), 0.0, math.sqrt(2)),
    "lrelu": (lambda x, a: np.where(x >= 0, x, a * x), 0.2, math.sqrt(2)),
    "tanh": (lambda x, a: np.tanh(x), 0.0, 1.0),
    "sigmoid": (lambda x, a: 1 / (1 + np.exp(-x)), 0.0, 1.0),
    "elu": (lambda x, a: np.where(x > 0, x, np.expm1(x)), 0.0, 1.0),
    "selu": (lambda x, a: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)), 0.0, 1.0),
    "softplus": (lambda x, a: np.log1p(np.exp(x)), 0.0, 1.0),
    "swish": (lambda x, a: x / (1 + np.exp(-x)), 0.0, math.sqrt(2)),
}


def test_activation_table_matches_nvlabs_defaults():
    assert set(activation_funcs) == set(_EXPECTED)
    for name, (_, alpha, gain) in _EXPECTED.items():
        assert activation_funcs[name].def_alpha == pytest.approx(alpha)
        assert activation_funcs[name].def_gain == pytest.approx(gain)


@pytest.mark.parametrize("act", sorted(_EXPECTED))
def test_bias_act_values(act):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4, 2, dtype=torch.float64) * 2
    b = torch.randn(4, dtype=torch.float64)
    fn, def_alpha, def_gain = _EXPECTED[act]
    xb = x.numpy() + b.numpy().reshape(1, 1, 4, 1)
    # defaults
    y = bias_act(x, b, dim=2, act=act)
    np.testing.assert_allclose(y.numpy(), fn(xb, def_alpha) * def_gain, rtol=1e-12, atol=1e-12)
    # explicit alpha, gain, clamp
    y = bias_act(x, b, dim=2, act=act, alpha=0.3, gain=0.7, clamp=0.5)
    np.testing.assert_allclose(y.numpy(), np.clip(fn(xb, 0.3) * 0.7, -0.5, 0.5), rtol=1e-12, atol=1e-12)
    # no bias: dim ignored
    y = bias_act(x, None, dim=7, act=act, gain=1)
    np.testing.assert_allclose(y.numpy(), fn(x.numpy(), def_alpha), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act", sorted(_EXPECTED))
def test_bias_act_gradients(act):
    torch.manual_seed(1)
    # Keep inputs away from the kinks at 0 and at the clamp, where finite differences are undefined.
    x = torch.randn(2, 3, 3, dtype=torch.float64)
    x = (x + 0.1 * torch.sign(x)).requires_grad_()
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    clamp = 5.0 if act != "linear" else None

    def f(x, b):
        return bias_act(x, b, dim=1, act=act, gain=1.3, clamp=clamp)

    assert _gradcheck(f, (x, b))
    assert _gradgradcheck(f, (x, b))


def test_bias_act_errors():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act(x, act="gelu")
    with pytest.raises(ValueError, match="elements"):
        bias_act(x, torch.zeros(4), dim=1)
    with pytest.raises(ValueError, match="clamp"):
        bias_act(x, clamp=-1)
    with pytest.raises(ValueError, match="impl"):
        bias_act(x, impl="triton")


# ---------------------------------------------------------------------------------------------------------------
# upfirdn2d


def _naive_upfirdn2d(x, f, up, down, pad, flip_filter=False, gain=1.0):
    """Direct loops over output pixels: zero-insert, pad/crop, convolve (valid), decimate."""
    upx, upy = up
    downx, downy = down
    px0, px1, py0, py1 = pad
    x = np.asarray(x, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 1:
        f = np.outer(f, f)
    f = f * gain
    n, c, h, w = x.shape
    u = np.zeros([n, c, h * upy, w * upx])
    u[:, :, ::upy, ::upx] = x
    hp, wp = h * upy + py0 + py1, w * upx + px0 + px1
    p = np.zeros([n, c, hp, wp])
    for yy in range(hp):
        for xx in range(wp):
            sy, sx = yy - py0, xx - px0
            if 0 <= sy < u.shape[2] and 0 <= sx < u.shape[3]:
                p[:, :, yy, xx] = u[:, :, sy, sx]
    fh, fw = f.shape
    k = f if flip_filter else f[::-1, ::-1]  # correlation kernel
    oh, ow = hp - fh + 1, wp - fw + 1
    out = np.zeros([n, c, oh, ow])
    for yy in range(oh):
        for xx in range(ow):
            out[:, :, yy, xx] = np.einsum("ncij,ij->nc", p[:, :, yy : yy + fh, xx : xx + fw], k)
    return out[:, :, ::downy, ::downx]


def test_setup_filter():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    np.testing.assert_allclose(f.numpy(), np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64, rtol=1e-7)
    fs = setup_filter([1, 2, 3, 4, 4, 3, 2, 1])  # >= 8 taps: separable by default
    assert fs.ndim == 1 and float(fs.sum()) == pytest.approx(1)
    assert float(setup_filter([1, 3, 3, 1], gain=4).sum()) == pytest.approx(4)
    assert float(setup_filter([1, 2, 3], flip_filter=True)[0, 0]) == pytest.approx(9 / 36)
    assert setup_filter(None).shape == (1, 1)


_UPFIRDN_CASES = [
    # up, down, padding, flip_filter, gain, filter
    ((1, 1), (1, 1), (0, 0, 0, 0), False, 1.0, [1, 3, 3, 1]),
    ((2, 2), (1, 1), (2, 1, 2, 1), False, 4.0, [1, 3, 3, 1]),
    ((1, 1), (2, 2), (1, 1, 1, 1), False, 1.0, [1, 3, 3, 1]),
    ((2, 1), (1, 3), (1, -1, 0, 2), True, 2.0, [1, 2, 3]),
    ((3, 2), (2, 2), (-1, 3, 2, 0), False, 1.0, [[1, 2], [3, 5]]),
    ((1, 1), (1, 1), (1, 2, 0, 1), False, 1.0, [1, 2, 3, 4, 4, 3, 2, 1]),  # separable path
]


@pytest.mark.parametrize("up,down,pad,flip,gain,taps", _UPFIRDN_CASES)
def test_upfirdn2d_matches_naive(up, down, pad, flip, gain, taps):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    f = setup_filter(taps)
    y = upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=gain)
    fn = f.numpy().astype(np.float64)
    if fn.ndim == 1:
        fn = np.outer(fn, fn)
    expected = _naive_upfirdn2d(x.numpy(), fn, up, down, pad, flip, gain)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("up,down,pad,flip,gain,taps", _UPFIRDN_CASES[1:5])
def test_upfirdn2d_gradients(up, down, pad, flip, gain, taps):
    torch.manual_seed(3)
    x = torch.randn(1, 1, 4, 3, dtype=torch.float64, requires_grad=True)
    f = setup_filter(taps)

    def fn(x):
        return upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=gain)

    assert _gradcheck(fn, (x,))
    assert _gradgradcheck(fn, (x,))


def test_resample_wrappers():
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 3, 8, 8)
    assert upsample2d(x, f).shape == (2, 3, 16, 16)
    assert downsample2d(x, f).shape == (2, 3, 4, 4)
    assert filter2d(x, f).shape == (2, 3, 8, 8)
    assert upsample2d(x, f, up=(2, 1), padding=(1, 1, 0, 0)).shape == (2, 3, 8, 18)
    # A constant image stays constant away from the borders (filters are normalised; upsample2d keeps the level).
    ones = torch.ones(1, 1, 8, 8)
    torch.testing.assert_close(upsample2d(ones, f)[:, :, 2:-2, 2:-2], torch.ones(1, 1, 12, 12))
    torch.testing.assert_close(downsample2d(ones, f)[:, :, 1:-1, 1:-1], torch.ones(1, 1, 2, 2))
    torch.testing.assert_close(filter2d(ones, f)[:, :, 2:-2, 2:-2], torch.ones(1, 1, 4, 4))
    # upsample2d is upfirdn2d with the centring padding and gain up^2
    ref = torch.from_numpy(
        _naive_upfirdn2d(x.double().numpy(), f.double().numpy(), (2, 2), (1, 1), (2, 1, 2, 1), False, 4.0)
    )
    torch.testing.assert_close(upsample2d(x.double(), f), ref)


def test_upfirdn2d_errors():
    f = setup_filter([1, 3, 3, 1])
    with pytest.raises(ValueError, match="smaller than the filter"):
        upfirdn2d(torch.zeros(1, 1, 2, 2), f)
    with pytest.raises(ValueError, match="4-D"):
        upfirdn2d(torch.zeros(1, 2, 2), f)
    with pytest.raises(ValueError, match="up"):
        upfirdn2d(torch.zeros(1, 1, 8, 8), f, up=0)


# ---------------------------------------------------------------------------------------------------------------
# conv2d_resample


def _naive_conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter):
    """upfirdn2d(up, padded) -> conv2d -> upfirdn2d(down), each step by the definition."""
    fw = fh = 1 if f is None else f.shape[-1]
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    fn = np.ones([1, 1]) if f is None else f.double().numpy()
    y = _naive_upfirdn2d(
        x.numpy(),
        fn if up > 1 else np.ones([1, 1]),
        (up, up),
        (1, 1),
        (px0, px1, py0, py1),
        flip_filter,
        float(up * up),
    )
    wk = w if flip_weight else w.flip([2, 3])
    y = F.conv2d(torch.from_numpy(y), wk, groups=groups).numpy()
    if down > 1:
        y = _naive_upfirdn2d(y, fn, (1, 1), (down, down), (0, 0, 0, 0), flip_filter)
    return y


@pytest.mark.parametrize(
    "k,up,down,groups,flip_weight",
    [
        (3, 1, 1, 1, True),
        (3, 1, 1, 2, False),
        (3, 2, 1, 1, False),
        (3, 2, 1, 2, True),
        (3, 1, 2, 1, True),
        (1, 1, 2, 1, True),
        (1, 2, 1, 1, True),
        (3, 2, 2, 1, False),
        (2, 1, 1, 1, True),  # even kernel: asymmetric padding, general path
    ],
)
def test_conv2d_resample_matches_naive(k, up, down, groups, flip_weight):
    torch.manual_seed(4)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1])
    y = conv2d_resample(x, w, f=f, up=up, down=down, padding=k // 2, groups=groups, flip_weight=flip_weight)
    expected = _naive_conv2d_resample(x, w, f, up, down, k // 2, groups, flip_weight, False)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
def test_conv2d_resample_gradients(up, down):
    torch.manual_seed(5)
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1])

    def fn(x, w):
        return conv2d_resample(x, w, f=f, up=up, down=down, padding=1, flip_weight=(up == 1))

    assert _gradcheck(fn, (x, w))
    assert _gradgradcheck(fn, (x, w))


# ---------------------------------------------------------------------------------------------------------------
# modulated_conv2d


def _naive_modconv(x, weight, styles, noise, up, demodulate, flip_weight, f):
    outs = []
    for i in range(x.shape[0]):
        w = weight * styles[i].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / torch.sqrt((w**2).sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        y = conv2d_resample(x[i : i + 1], w, f=f, up=up, padding=weight.shape[-1] // 2, flip_weight=flip_weight)
        outs.append(y)
    y = torch.cat(outs)
    return y + noise if noise is not None else y


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("up,demodulate,with_noise", [(1, True, True), (2, True, False), (1, False, True)])
def test_modulated_conv2d(fused, up, demodulate, with_noise):
    torch.manual_seed(6)
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    weight = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    styles = torch.rand(3, 4, dtype=torch.float64) + 0.5
    res = 5 * up
    noise = torch.randn(3, 1, res, res, dtype=torch.float64) if with_noise else None
    f = setup_filter([1, 3, 3, 1])
    y = modulated_conv2d(
        x,
        weight,
        styles,
        noise=noise,
        up=up,
        padding=1,
        resample_filter=f,
        demodulate=demodulate,
        flip_weight=(up == 1),
        fused_modconv=fused,
    )
    expected = _naive_modconv(x, weight, styles, noise, up, demodulate, up == 1, f)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)


def test_modulated_conv2d_demodulation_removes_style_scale():
    torch.manual_seed(7)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    weight = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    styles = torch.rand(2, 4, dtype=torch.float64) + 0.1
    a = modulated_conv2d(x, weight, styles, padding=1)
    b = modulated_conv2d(x, weight, styles * 7.0, padding=1)
    torch.testing.assert_close(a, b)


def test_modulated_conv2d_gradients():
    torch.manual_seed(8)
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    styles = (torch.rand(2, 2, dtype=torch.float64) + 0.5).requires_grad_()
    for fused in (True, False):

        def fn(x, weight, styles, fused=fused):
            return modulated_conv2d(x, weight, styles, padding=1, fused_modconv=fused)

        assert _gradcheck(fn, (x, weight, styles))
        assert _gradgradcheck(fn, (x, weight, styles))


def test_modulated_conv2d_shape_errors():
    with pytest.raises(ValueError, match="styles"):
        modulated_conv2d(torch.zeros(2, 4, 5, 5), torch.zeros(3, 4, 3, 3), torch.zeros(2, 5))


# ---------------------------------------------------------------------------------------------------------------
# Dispatch contract with sgtrain.ops.fused


@pytest.fixture
def fake_fused(monkeypatch):
    calls = []
    mod = types.ModuleType("sgtrain.ops.fused")

    def bias_act_fused(x, b, dim, act, alpha, gain, clamp):
        calls.append(("bias_act", dim, act, alpha, gain, clamp))
        return torch.full_like(x, 7.0)

    def upfirdn2d_fused(x, f, up, down, padding, flip_filter, gain):
        calls.append(("upfirdn2d", tuple(f.shape), up, down, padding, flip_filter, gain))
        return torch.full_like(x, 9.0)

    mod.bias_act_fused = bias_act_fused
    mod.upfirdn2d_fused = upfirdn2d_fused
    monkeypatch.setitem(sys.modules, "sgtrain.ops.fused", mod)
    return calls


def test_dispatch_auto_uses_backend_and_normalised_args(fake_fused, monkeypatch):
    x = torch.randn(1, 2, 8, 8)
    f = setup_filter([1, 3, 3, 1])
    # stub backend: reference
    assert bias_act(x, act="lrelu").shape == x.shape and not fake_fused
    monkeypatch.setattr(_backend, "use_fused", lambda op, t: True)
    assert float(bias_act(x, act="lrelu")[0, 0, 0, 0]) == 7.0
    assert fake_fused[-1] == ("bias_act", 1, "lrelu", 0.2, math.sqrt(2), None)
    bias_act(x, torch.zeros(2), act="relu", gain=2, clamp=3)
    assert fake_fused[-1] == ("bias_act", 1, "relu", 0.0, 2.0, 3.0)
    assert float(upsample2d(x, f)[0, 0, 0, 0]) == 9.0
    assert fake_fused[-1] == ("upfirdn2d", (4, 4), (2, 2), (1, 1), (2, 1, 2, 1), False, 4.0)
    upfirdn2d(x, None, down=(2, 1), padding=(1, 2))
    assert fake_fused[-1] == ("upfirdn2d", (1, 1), (1, 1), (2, 1), (1, 1, 2, 2), False, 1.0)
    # impl='ref' ignores the backend
    n = len(fake_fused)
    bias_act(x, act="lrelu", impl="ref")
    upfirdn2d(x, f, padding=2, impl="ref")
    assert len(fake_fused) == n


def test_dispatch_forced_fused(fake_fused):
    x = torch.randn(1, 2, 8, 8)
    assert float(bias_act(x, impl="cuda")[0, 0, 0, 0]) == 7.0
    assert float(upfirdn2d(x, setup_filter([1, 3, 3, 1]), padding=2, impl="fused")[0, 0, 0, 0]) == 9.0
