// sgtrain fused filtered leaky ReLU: parameters and the per-tile maths (StyleGAN3, Karras et al. 2021, appendix D).
//
// For each image plane: add the bias, upsample by `up` (zero insertion), pad (negative = crop), convolve with fu,
// multiply by up^2 * gain, leaky ReLU (slope) and clamp, convolve with fd and keep every `down`-th pixel. All of it
// happens on one tile of the output at a time, in shared memory:
//
//   stage 1  load the input pixels the tile needs (plus bias; zero outside the image)           in_s  [ih, iw]
//   stage 2  upsample + fu: separable = a horizontal then a vertical pass; 2-D = direct          tmp   [th, tw]
//   stage 3  gain, leaky ReLU, clamp; the sign byte of each upsampled pixel is written or read  tmp
//   stage 4  fd + downsample: separable = horizontal then vertical pass; 2-D = direct           output
//
// Coordinates along one axis (y alike): tmp pixel t (t = 0 .. tmp_w - 1) is the fu window starting at position t
// of the upsampled, padded image; position m of that image holds input pixel (m - pad_x0) / up when the division
// is exact, else 0. Tap k of a window reads position t + k and weighs it by fu[fu_w - 1 - k] (convolution) or
// fu[k] (flip = correlation). Output pixel o is the fd window starting at tmp pixel o * down.
//
// Sign bytes (one per tmp pixel, a uint8 tensor [N, C, s_h, s_w]): bit 0 = the leaky ReLU took its negative side
// (the gradient is multiplied by slope), bit 1 = the value was clamped (no gradient). The backward pass is the
// same operation transposed (up and down swapped, fu and fd swapped, filters flipped, mirrored padding) in "read"
// mode: instead of the activation it multiplies by the stored derivative. Its tmp pixel t is the forward's tmp
// pixel t + sx (sy), which makes every order of derivative the same kernel.
//
// The tile function runs with `nthreads` cooperating threads (a CUDA block) separated by barriers between the
// stages; the host emulation (cpu_emulation.cpp) runs it with one thread, where the barriers are no-ops, so the
// arithmetic and index maths can be tested without a GPU.
#pragma once

#include "sgt_common.h"

#if defined(__CUDA_ARCH__)
#define SGT_SYNC() __syncthreads()
#else
#define SGT_SYNC() ((void)0)
#endif

namespace sgt {

enum FlreluSignMode : int { kSignsNone = 0, kSignsWrite = 1, kSignsRead = 2 };
constexpr uint8_t kSignNeg = 1;
constexpr uint8_t kSignClamp = 2;

struct FilteredLreluParams {
    const void* x;      // [N, C, in_h, in_w] input, any strides
    const void* b;      // [C] bias (x's dtype) or nullptr
    const float* fu;    // [fu_h, fu_w] contiguous, or [fu_w] when fu_sep (the same taps along x and y)
    const float* fd;    // likewise
    void* y;            // [N, C, out_h, out_w] output, any strides
    uint8_t* signs;     // [N, C, s_h, s_w] contiguous sign bytes, or nullptr (sign_mode none)
    int sign_mode;      // FlreluSignMode
    int up, down;
    int pad_x0, pad_y0;
    int fu_w, fu_h, fd_w, fd_h;
    int fu_sep, fd_sep;
    int flip;
    double gain;        // applied after fu (includes up^2)
    double slope;
    double clamp;       // < 0: no clamping
    int in_w, in_h, channels;
    int64_t in_sw, in_sh, in_sc, in_sn;
    int out_w, out_h;
    int64_t out_sw, out_sh, out_sc, out_sn;
    int tmp_w, tmp_h;   // size of this operation's upsampled image
    int s_w, s_h, sx, sy;
    int tile_w, tile_h, tiles_x, tiles_y;
    int64_t num_items;  // N * C * tiles_y * tiles_x
    // Shared-memory layout, in elements of the accumulation type.
    int in_pitch;       // row pitch of in_s (the widest input window)
    int tw_pitch;       // row pitch of h_s and tmp (the widest tmp window)
    int64_t off_h, off_tmp, off_d, smem_elems;
};

SGT_HD int ceil_div(int a, int b) { return -floor_div(-a, b); }
SGT_HD int imin(int a, int b) { return a < b ? a : b; }
SGT_HD int imax(int a, int b) { return a > b ? a : b; }

// Tile geometry shared by the host (shared-memory sizing) and the device code.
struct FlreluTileDims {
    int tw, th;  // tmp window of a tile with ow x oh outputs
    int iw, ih;  // upper bound of the input window
};

SGT_HD FlreluTileDims flrelu_tile_dims(int ow, int oh, int up, int down, int fu_w, int fu_h, int fd_w, int fd_h) {
    FlreluTileDims d;
    d.tw = (ow - 1) * down + fd_w;
    d.th = (oh - 1) * down + fd_h;
    d.iw = ceil_div(d.tw + fu_w - 1, up) + 1;
    d.ih = ceil_div(d.th + fu_h - 1, up) + 1;
    return d;
}

// Filter tap k of a window (k = 0 is the first position it covers).
SGT_HD float flrelu_tap(const float* f, int len, int k, int flip) { return f[flip ? k : len - 1 - k]; }
SGT_HD float flrelu_tap2(const float* f, int fw, int fh, int kx, int ky, int flip) {
    const int fx = flip ? kx : fw - 1 - kx;
    const int fy = flip ? ky : fh - 1 - ky;
    return f[fy * fw + fx];
}

// Stage 3 on one value: the activation (write/none) or the stored derivative (read).
template <class S>
SGT_HD S flrelu_activate(const FilteredLreluParams& p, S v, int64_t plane, int gy, int gx) {
    v *= S(p.gain);
    const bool in_range = gx >= 0 && gx < p.s_w && gy >= 0 && gy < p.s_h;
    const int64_t s_idx = (plane * p.s_h + gy) * p.s_w + gx;
    if (p.sign_mode == kSignsRead) {
        // Outside the forward's upsampled image the incoming gradient is zero anyway; treat it as clamped.
        const uint8_t s = in_range ? p.signs[s_idx] : kSignClamp;
        if (s & kSignNeg) v *= S(p.slope);
        if (s & kSignClamp) v = S(0);
        return v;
    }
    uint8_t s = 0;
    if (!(v > S(0))) {  // torch's leaky_relu: slope where x <= 0 (gradient too)
        v *= S(p.slope);
        s = kSignNeg;
    }
    if (p.clamp >= 0) {
        const S c = S(p.clamp);
        if (v > c) {
            v = c;
            s |= kSignClamp;
        } else if (v < -c) {
            v = -c;
            s |= kSignClamp;
        }
    }
    if (p.sign_mode == kSignsWrite && in_range) p.signs[s_idx] = s;  // halo pixels of two tiles: same value
    return v;
}

// Computes one tile (work item) of the output. `sm` holds p.smem_elems elements of the accumulation type.
template <class T>
SGT_HD void filtered_lrelu_tile(const FilteredLreluParams& p, int64_t item, typename Acc<T>::type* sm, int tid,
                                int nthreads) {
    using S = typename Acc<T>::type;
    int64_t t = item;
    const int tile_x = int(t % p.tiles_x);
    t /= p.tiles_x;
    const int tile_y = int(t % p.tiles_y);
    t /= p.tiles_y;
    const int64_t plane = t;  // n * C + c
    const int c = int(plane % p.channels);
    const int n = int(plane / p.channels);

    const int ox0 = tile_x * p.tile_w, oy0 = tile_y * p.tile_h;
    const int ow = imin(p.tile_w, p.out_w - ox0), oh = imin(p.tile_h, p.out_h - oy0);
    const FlreluTileDims dims = flrelu_tile_dims(ow, oh, p.up, p.down, p.fu_w, p.fu_h, p.fd_w, p.fd_h);
    const int tw = dims.tw, th = dims.th;
    const int tx0 = ox0 * p.down, ty0 = oy0 * p.down;  // first tmp pixel of the tile
    // Input pixels i with i * up + pad0 inside [t0, t0 + tw + fu_w - 2].
    const int ix0 = ceil_div(tx0 - p.pad_x0, p.up);
    const int iy0 = ceil_div(ty0 - p.pad_y0, p.up);
    const int iw = imax(0, floor_div(tx0 + tw + p.fu_w - 2 - p.pad_x0, p.up) - ix0 + 1);
    const int ih = imax(0, floor_div(ty0 + th + p.fu_h - 2 - p.pad_y0, p.up) - iy0 + 1);

    S* in_s = sm;
    S* h_s = sm + p.off_h;
    S* tmp = sm + p.off_tmp;
    S* d_s = sm + p.off_d;
    const int ip = p.in_pitch, tp = p.tw_pitch;

    // Stage 1: input window plus bias.
    const T* xp = static_cast<const T*>(p.x) + n * p.in_sn + c * p.in_sc;
    const S bias = p.b ? S(static_cast<const T*>(p.b)[c]) : S(0);
    for (int idx = tid; idx < ih * iw; idx += nthreads) {
        const int r = idx / iw, q = idx - r * iw;
        const int iy = iy0 + r, ix = ix0 + q;
        S v = S(0);
        if (iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w) v = S(xp[iy * p.in_sh + ix * p.in_sw]) + bias;
        in_s[r * ip + q] = v;
    }
    SGT_SYNC();

    // Stage 2: upsample + fu. Only taps landing on input pixels contribute: k = k0, k0 + up, ...
    const S up_gain = S(p.up * p.up);
    if (p.fu_sep) {
        for (int idx = tid; idx < ih * tw; idx += nthreads) {
            const int r = idx / tw, j = idx - r * tw;
            const int m = tx0 + j - p.pad_x0;
            S v = S(0);
            for (int k = pos_mod(-m, p.up); k < p.fu_w; k += p.up)
                v += in_s[r * ip + (m + k) / p.up - ix0] * S(flrelu_tap(p.fu, p.fu_w, k, p.flip));
            h_s[r * tp + j] = v;
        }
        SGT_SYNC();
        for (int idx = tid; idx < th * tw; idx += nthreads) {
            const int jr = idx / tw, j = idx - jr * tw;
            const int m = ty0 + jr - p.pad_y0;
            S v = S(0);
            for (int k = pos_mod(-m, p.up); k < p.fu_h; k += p.up)
                v += h_s[((m + k) / p.up - iy0) * tp + j] * S(flrelu_tap(p.fu, p.fu_h, k, p.flip));
            tmp[jr * tp + j] = v * up_gain;
        }
    } else {
        for (int idx = tid; idx < th * tw; idx += nthreads) {
            const int jr = idx / tw, j = idx - jr * tw;
            const int my = ty0 + jr - p.pad_y0, mx = tx0 + j - p.pad_x0;
            const int kx0 = pos_mod(-mx, p.up);
            S v = S(0);
            for (int ky = pos_mod(-my, p.up); ky < p.fu_h; ky += p.up) {
                const S* row = in_s + ((my + ky) / p.up - iy0) * ip;
                for (int kx = kx0; kx < p.fu_w; kx += p.up)
                    v += row[(mx + kx) / p.up - ix0] * S(flrelu_tap2(p.fu, p.fu_w, p.fu_h, kx, ky, p.flip));
            }
            tmp[jr * tp + j] = v * up_gain;
        }
    }
    SGT_SYNC();

    // Stage 3: activation (or the stored derivative).
    for (int idx = tid; idx < th * tw; idx += nthreads) {
        const int jr = idx / tw, j = idx - jr * tw;
        tmp[jr * tp + j] = flrelu_activate<S>(p, tmp[jr * tp + j], plane, ty0 + jr + p.sy, tx0 + j + p.sx);
    }
    SGT_SYNC();

    // Stage 4: fd + downsample.
    T* yp = static_cast<T*>(p.y) + n * p.out_sn + c * p.out_sc;
    if (p.fd_sep) {
        for (int idx = tid; idx < th * ow; idx += nthreads) {
            const int jr = idx / ow, o = idx - jr * ow;
            const S* row = tmp + jr * tp + o * p.down;
            S v = S(0);
            for (int k = 0; k < p.fd_w; k++) v += row[k] * S(flrelu_tap(p.fd, p.fd_w, k, p.flip));
            d_s[jr * p.tile_w + o] = v;
        }
        SGT_SYNC();
        for (int idx = tid; idx < oh * ow; idx += nthreads) {
            const int oy = idx / ow, ox = idx - oy * ow;
            S v = S(0);
            for (int k = 0; k < p.fd_h; k++)
                v += d_s[(oy * p.down + k) * p.tile_w + ox] * S(flrelu_tap(p.fd, p.fd_h, k, p.flip));
            yp[(oy0 + oy) * p.out_sh + (ox0 + ox) * p.out_sw] = T(v);
        }
    } else {
        for (int idx = tid; idx < oh * ow; idx += nthreads) {
            const int oy = idx / ow, ox = idx - oy * ow;
            S v = S(0);
            for (int ky = 0; ky < p.fd_h; ky++) {
                const S* row = tmp + (oy * p.down + ky) * tp + ox * p.down;
                for (int kx = 0; kx < p.fd_w; kx++)
                    v += row[kx] * S(flrelu_tap2(p.fd, p.fd_w, p.fd_h, kx, ky, p.flip));
            }
            yp[(oy0 + oy) * p.out_sh + (ox0 + ox) * p.out_sw] = T(v);
        }
    }
    SGT_SYNC();  // the next item reuses the shared memory
}

// Shared-memory layout for tiles of tile_w x tile_h outputs (elements of the accumulation type); see the params.
inline void flrelu_layout(FilteredLreluParams& p, int tile_w, int tile_h) {
    const FlreluTileDims d = flrelu_tile_dims(tile_w, tile_h, p.up, p.down, p.fu_w, p.fu_h, p.fd_w, p.fd_h);
    p.tile_w = tile_w;
    p.tile_h = tile_h;
    p.in_pitch = d.iw;
    p.tw_pitch = d.tw;
    p.off_h = int64_t(d.ih) * d.iw;
    p.off_tmp = p.off_h + (p.fu_sep ? int64_t(d.ih) * d.tw : 0);
    const int64_t tmp_end = p.off_tmp + int64_t(d.th) * d.tw;
    const int64_t d_elems = p.fd_sep ? int64_t(d.th) * tile_w : 0;
    p.off_d = (d_elems <= p.off_tmp) ? 0 : tmp_end;  // stage 4 reuses the input buffers when they are big enough
    p.smem_elems = (p.off_d == 0) ? tmp_end : tmp_end + d_elems;
    p.tiles_x = (p.out_w + tile_w - 1) / tile_w;
    p.tiles_y = (p.out_h + tile_h - 1) / tile_h;
}

// Picks the largest square tile (64, 32, ..., 1 outputs a side) whose shared memory fits `smem_limit` bytes.
// Returns false when even a 1x1 tile does not fit (filters far larger than StyleGAN3's).
inline bool flrelu_choose_tiles(FilteredLreluParams& p, int64_t elem_bytes, int64_t smem_limit) {
    for (int tile = 64; tile >= 1; tile /= 2) {
        flrelu_layout(p, tile, tile);
        if (p.smem_elems * elem_bytes <= smem_limit) return true;
    }
    return false;
}

}  // namespace sgt
