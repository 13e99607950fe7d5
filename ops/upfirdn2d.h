// sgtrain fused upfirdn2d: parameters and the per-output-pixel maths.
//
// For each image plane: upsample by inserting (up - 1) zeros after every pixel, pad by (pad0, pad1) (negative =
// crop), convolve with the FIR filter f (true convolution; flip = correlation), keep every down-th pixel, and
// multiply by gain. One output pixel is a sum over the filter taps that land on non-zero (original) pixels:
// in the upsampled frame the window of output pixel o starts at m = o * down - pad0, tap k reads upsampled
// position m + k, which is an input pixel only when (m + k) % up == 0. The first such tap is k0 = (-m) mod up
// and the others follow every `up` taps, so the loop visits ceil(fw / up) taps per axis instead of fw.
#pragma once

#include "sgt_common.h"

namespace sgt {

struct Upfirdn2dParams {
    const void* x;  // input, any strides
    const float* f; // [fh, fw] filter, any strides
    void* y;        // output
    int up_x, up_y, down_x, down_y;
    int pad_x0, pad_y0;
    int flip;
    double gain;
    int in_w, in_h, in_c, in_n;
    int64_t in_sw, in_sh, in_sc, in_sn;
    int f_w, f_h;
    int64_t f_sw, f_sh;
    int out_w, out_h, out_c, out_n;
    int64_t out_sw, out_sh, out_sc, out_sn;
    int channels_last;  // output element order: 1 = c fastest (NHWC), 0 = x fastest (NCHW)
    int64_t size_out;
};

// Filter tap for convolution index k (k = 0 is the first tap of the window).
SGT_HD float upfirdn2d_tap(const Upfirdn2dParams& p, int kx, int ky) {
    const int fx = p.flip ? kx : p.f_w - 1 - kx;
    const int fy = p.flip ? ky : p.f_h - 1 - ky;
    return p.f[fx * p.f_sw + fy * p.f_sh];
}

// Computes output element i (linear index in the output's memory order).
// UX, UY, DX, DY: compile-time up/down factors, 0 = read them from p at run time.
// MAXW, MAXH: compile-time bound on the filter size for unrolling, 0 = no bound (run-time loop).
template <class T, int UX, int UY, int DX, int DY, int MAXW, int MAXH>
SGT_HD void upfirdn2d_element(const Upfirdn2dParams& p, int64_t i) {
    using S = typename Acc<T>::type;
    const int upx = UX ? UX : p.up_x, upy = UY ? UY : p.up_y;
    const int downx = DX ? DX : p.down_x, downy = DY ? DY : p.down_y;

    int ox, oy, c, n;
    int64_t t = i;
    if (p.channels_last) {
        c = int(t % p.out_c); t /= p.out_c;
        ox = int(t % p.out_w); t /= p.out_w;
        oy = int(t % p.out_h); n = int(t / p.out_h);
    } else {
        ox = int(t % p.out_w); t /= p.out_w;
        oy = int(t % p.out_h); t /= p.out_h;
        c = int(t % p.out_c); n = int(t / p.out_c);
    }

    const int mx = ox * downx - p.pad_x0;
    const int my = oy * downy - p.pad_y0;
    const int kx0 = pos_mod(-mx, upx);
    const int ky0 = pos_mod(-my, upy);
    const int ix0 = (mx + kx0) / upx;  // exact: mx + kx0 is a multiple of upx
    const int iy0 = (my + ky0) / upy;
    const int nx = MAXW ? (MAXW + (UX ? UX : 1) - 1) / (UX ? UX : 1) : (p.f_w - kx0 + upx - 1) / upx;
    const int ny = MAXH ? (MAXH + (UY ? UY : 1) - 1) / (UY ? UY : 1) : (p.f_h - ky0 + upy - 1) / upy;

    const T* xp = static_cast<const T*>(p.x) + n * p.in_sn + c * p.in_sc;
    S v = S(0);
#if defined(__CUDACC__)
#pragma unroll
#endif
    for (int jy = 0; jy < ny; jy++) {
        const int ky = ky0 + jy * upy;
        const int iy = iy0 + jy;
        if (ky >= p.f_h || iy < 0 || iy >= p.in_h) continue;
#if defined(__CUDACC__)
#pragma unroll
#endif
        for (int jx = 0; jx < nx; jx++) {
            const int kx = kx0 + jx * upx;
            const int ix = ix0 + jx;
            if (kx >= p.f_w || ix < 0 || ix >= p.in_w) continue;
            v += S(xp[iy * p.in_sh + ix * p.in_sw]) * S(upfirdn2d_tap(p, kx, ky));
        }
    }
    v *= S(p.gain);
    static_cast<T*>(p.y)[n * p.out_sn + c * p.out_sc + oy * p.out_sh + ox * p.out_sw] = T(v);
}

// Chooses a compile-time specialisation for the common StyleGAN cases (factors 1, 2, 4 and small filters) and
// calls runner.template run<UX, UY, DX, DY, MAXW, MAXH>(); every other case runs the generic variant.
template <class Runner>
void dispatch_upfirdn2d(const Upfirdn2dParams& p, Runner& runner) {
    const int ux = p.up_x, uy = p.up_y, dx = p.down_x, dy = p.down_y, fw = p.f_w, fh = p.f_h;
    const bool same_up = ux == uy, same_down = dx == dy;
    if (same_up && same_down && fw <= 4 && fh <= 4) {
        if (ux == 1 && dx == 1) { runner.template run<1, 1, 1, 1, 4, 4>(); return; }
        if (ux == 2 && dx == 1) { runner.template run<2, 2, 1, 1, 4, 4>(); return; }
        if (ux == 1 && dx == 2) { runner.template run<1, 1, 2, 2, 4, 4>(); return; }
    }
    if (same_up && same_down && fw <= 8 && fh <= 8) {
        if (ux == 1 && dx == 1) { runner.template run<1, 1, 1, 1, 8, 8>(); return; }
        if (ux == 2 && dx == 1) { runner.template run<2, 2, 1, 1, 8, 8>(); return; }
        if (ux == 1 && dx == 2) { runner.template run<1, 1, 2, 2, 8, 8>(); return; }
    }
    // Separable passes: a [1, taps] filter along x or a [taps, 1] filter along y.
    if (fh == 1 && uy == 1 && dy == 1 && fw <= 16) {
        if (ux == 1 && dx == 1) { runner.template run<1, 1, 1, 1, 16, 1>(); return; }
        if (ux == 2 && dx == 1) { runner.template run<2, 1, 1, 1, 16, 1>(); return; }
        if (ux == 1 && dx == 2) { runner.template run<1, 1, 2, 1, 16, 1>(); return; }
        if (ux == 4 && dx == 1) { runner.template run<4, 1, 1, 1, 16, 1>(); return; }
    }
    if (fw == 1 && ux == 1 && dx == 1 && fh <= 16) {
        if (uy == 1 && dy == 1) { runner.template run<1, 1, 1, 1, 1, 16>(); return; }
        if (uy == 2 && dy == 1) { runner.template run<1, 2, 1, 1, 1, 16>(); return; }
        if (uy == 1 && dy == 2) { runner.template run<1, 1, 1, 2, 1, 16>(); return; }
        if (uy == 4 && dy == 1) { runner.template run<1, 4, 1, 1, 1, 16>(); return; }
    }
    runner.template run<0, 0, 0, 0, 0, 0>();
}

}  // namespace sgt
