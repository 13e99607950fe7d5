// sgtrain fused bias + activation + gain + clamp: parameters and the per-element maths.
//
// grad = 0: y  = clamp(act(x + b) * gain)                                   (forward)
// grad = 1: dx = dy_in * act'(z) * gain * [|yref| < clamp]                    (first derivative, z = xref + b)
// grad = 2: d  = x * act''(z) * gain * dy * [|yref| < clamp]                  (second derivative)
// For grad >= 1 the first argument `x` carries the incoming gradient. The derivatives of relu, lrelu, tanh,
// sigmoid, elu, selu and softplus are written in terms of the saved output yref (act(z) = yref / gain); swish
// needs the saved input xref. Clamped outputs (|yref| >= clamp) pass no gradient; clamp is compared as the storage
// type rounds it (NVlabs' kernel compares with the float clamp, which lets float16 outputs clamped to a clamp that
// float16 cannot hold pass gradient; for conv_clamp = 256 the two agree).
#pragma once

#include "sgt_common.h"

namespace sgt {

enum BiasActKind : int {
    kLinear = 1, kRelu = 2, kLrelu = 3, kTanh = 4, kSigmoid = 5, kElu = 6, kSelu = 7, kSoftplus = 8, kSwish = 9
};

struct BiasActParams {
    const void* x;     // [size_x] input (grad 0) or incoming gradient (grad >= 1)
    const void* b;     // [size_b] bias or nullptr
    const void* xref;  // [size_x] saved forward input or nullptr
    const void* yref;  // [size_x] saved forward output or nullptr
    const void* dy;    // [size_x] first-order incoming gradient (grad 2) or nullptr
    void* y;           // [size_x] output
    int grad;
    int act;
    double alpha;
    double gain;
    double clamp;       // < 0: no clamping
    int64_t size_x;
    int64_t size_b;
    int64_t step_b;     // memory stride of the bias dimension
};

template <class S, int A>
SGT_HD S bias_act_value(int G, S x, S b, S xref, S yref, S dy, S alpha, S gain, S clamp) {
    const S one = S(1), two = S(2), zero = S(0);
    const S exp_range = S(80), half_exp_range = S(40);
    const S selu_scale = S(1.0507009873554804934193349852946);
    const S selu_alpha = S(1.6732632423543772848170429916717);
    if (G == 0) x += b; else xref += b;
    const S yy = (gain != zero) ? yref / gain : zero;  // act(z) recovered from the saved output
    S y = zero;
    if (A == kLinear) {
        y = (G <= 1) ? x : zero;
    } else if (A == kRelu) {
        if (G == 0) y = (x > zero) ? x : zero;
        else if (G == 1) y = (yy > zero) ? x : zero;
    } else if (A == kLrelu) {
        if (G == 0) y = (x > zero) ? x : x * alpha;
        else if (G == 1) y = (yy > zero) ? x : x * alpha;
    } else if (A == kTanh) {
        if (G == 0) {
            y = ftanh(x);
        } else if (G == 1) {
            y = x * (one - yy * yy);
        } else {
            y = x * (one - yy * yy) * (-two * yy);
        }
    } else if (A == kSigmoid) {
        if (G == 0) y = (x < -exp_range) ? zero : one / (one + fexp(-x));
        else if (G == 1) y = x * yy * (one - yy);
        else y = x * yy * (one - yy) * (one - two * yy);
    } else if (A == kElu) {
        if (G == 0) y = (x >= zero) ? x : fexpm1(x);
        else if (G == 1) y = (yy >= zero) ? x : x * (yy + one);
        else y = (yy >= zero) ? zero : x * (yy + one);
    } else if (A == kSelu) {
        if (G == 0) y = (x >= zero) ? selu_scale * x : selu_scale * selu_alpha * fexpm1(x);
        else if (G == 1) y = (yy >= zero) ? x * selu_scale : x * (yy + selu_scale * selu_alpha);
        else y = (yy >= zero) ? zero : x * (yy + selu_scale * selu_alpha);
    } else if (A == kSoftplus) {
        if (G == 0) {
            y = (x > exp_range) ? x : flog1p(fexp(x));
        } else {
            const S s = fexp(-yy);  // 1 - sigmoid(z), because exp(softplus(z)) = 1 + exp(z)
            y = (G == 1) ? x * (one - s) : x * s * (one - s);
        }
    } else if (A == kSwish) {
        if (G == 0) {
            y = (x < -exp_range) ? zero : x / (one + fexp(-x));
        } else {
            const S c = fexp(xref);
            const S d = c + one;
            if (G == 1) y = (xref > half_exp_range) ? x : x * c * (xref + d) / (d * d);
            else y = (xref > half_exp_range) ? zero : x * c * (xref * (two - d) + two * d) / (d * d * d);
            yref = (xref < -exp_range) ? zero : xref / (one + fexp(-xref)) * gain;
        }
    }
    y *= gain * dy;
    if (clamp >= zero) {
        if (G == 0) y = (y > clamp) ? clamp : ((y < -clamp) ? -clamp : y);
        else y = (yref > -clamp && yref < clamp) ? y : zero;
    }
    return y;
}

// Computes element i of the output.
template <class T, int A>
SGT_HD void bias_act_element(const BiasActParams& p, int64_t i) {
    using S = typename Acc<T>::type;
    const S x = S(static_cast<const T*>(p.x)[i]);
    const S b = p.b ? S(static_cast<const T*>(p.b)[(i / p.step_b) % p.size_b]) : S(0);
    const S xref = p.xref ? S(static_cast<const T*>(p.xref)[i]) : S(0);
    const S yref = p.yref ? S(static_cast<const T*>(p.yref)[i]) : S(0);
    const S dy = p.dy ? S(static_cast<const T*>(p.dy)[i]) : S(1);
    // The clamp as the storage type holds it: a clamped output is saved as T(clamp) (0.8 is 0.7998 in float16), and
    // the backward pass must recognise it as clamped. Same as S(p.clamp) for any clamp T holds exactly (256).
    const S clamp = (p.clamp >= 0) ? S(T(S(p.clamp))) : S(p.clamp);
    const S y = bias_act_value<S, A>(p.grad, x, b, xref, yref, dy, S(p.alpha), S(p.gain), clamp);
    static_cast<T*>(p.y)[i] = T(y);
}

// Calls runner.template run<A>() for the activation index p.act; returns false for an unknown index.
template <class Runner>
bool dispatch_bias_act(int act, Runner& runner) {
    switch (act) {
        case kLinear: runner.template run<kLinear>(); return true;
        case kRelu: runner.template run<kRelu>(); return true;
        case kLrelu: runner.template run<kLrelu>(); return true;
        case kTanh: runner.template run<kTanh>(); return true;
        case kSigmoid: runner.template run<kSigmoid>(); return true;
        case kElu: runner.template run<kElu>(); return true;
        case kSelu: runner.template run<kSelu>(); return true;
        case kSoftplus: runner.template run<kSoftplus>(); return true;
        case kSwish: runner.template run<kSwish>(); return true;
        default: return false;
    }
}

}  // namespace sgt
