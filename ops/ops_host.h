// sgtrain fused ops: argument checks and parameter setup shared by the CUDA binding (ops.cpp) and the host
// emulation (cpu_emulation.cpp). The Python side (sgtrain/ops/fused.py) calls
//   bias_act(x, b, xref, yref, dy, grad, dim, act, alpha, gain, clamp) -> Tensor
//   upfirdn2d(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain) -> Tensor
//   filtered_lrelu(x, fu, fd, b, si, up, down, px0, px1, py0, py1, sx, sy, gain, slope, clamp, flip, write_signs)
//       -> (Tensor y, Tensor signs)
// with empty tensors standing for "absent".
#pragma once

#include <torch/extension.h>

#include <climits>

#include <tuple>

#include "bias_act.h"
#include "filtered_lrelu.h"
#include "upfirdn2d.h"

namespace sgt {

inline bool same_layout(const torch::Tensor& a, const torch::Tensor& b) {
    if (a.dim() != b.dim()) return false;
    for (int64_t i = 0; i < a.dim(); i++) {
        if (a.size(i) != b.size(i)) return false;
        if (a.size(i) >= 2 && a.stride(i) != b.stride(i)) return false;
    }
    return true;
}

inline void check_floating(const torch::Tensor& x, const char* name) {
    const auto t = x.scalar_type();
    TORCH_CHECK(t == torch::kFloat || t == torch::kDouble || t == torch::kHalf || t == torch::kBFloat16,
                name, " must be float16, bfloat16, float32 or float64, got ", t);
}

// Validates the arguments, allocates the output (same layout as x) and fills the kernel parameters.
inline torch::Tensor prepare_bias_act(BiasActParams& p, const torch::Tensor& x, const torch::Tensor& b,
                                      const torch::Tensor& xref, const torch::Tensor& yref, const torch::Tensor& dy,
                                      int64_t grad, int64_t dim, int64_t act, double alpha, double gain,
                                      double clamp) {
    check_floating(x, "bias_act: x");
    TORCH_CHECK(b.numel() == 0 || (b.dtype() == x.dtype() && b.device() == x.device()),
                "bias_act: b must have x's dtype and device");
    for (const torch::Tensor* r : {&xref, &yref, &dy}) {
        TORCH_CHECK(r->numel() == 0 || (r->sizes() == x.sizes() && r->dtype() == x.dtype() &&
                                         r->device() == x.device() && same_layout(*r, x)),
                    "bias_act: xref, yref and dy must have x's shape, dtype, device and memory layout");
    }
    TORCH_CHECK(b.dim() == 1, "bias_act: b must be 1-D (an empty tensor for no bias)");
    TORCH_CHECK(b.numel() == 0 || (dim >= 0 && dim < x.dim() && b.numel() == x.size(dim)),
                "bias_act: b must have x.shape[dim] elements");
    TORCH_CHECK(grad >= 0 && grad <= 2, "bias_act: grad must be 0, 1 or 2");
    TORCH_CHECK(x.is_non_overlapping_and_dense(), "bias_act: x must be non-overlapping and dense");
    TORCH_CHECK(b.is_contiguous(), "bias_act: b must be contiguous");

    torch::Tensor y = torch::empty_like(x);
    TORCH_CHECK(same_layout(y, x), "bias_act: output layout differs from x");
    p.x = x.data_ptr();
    p.b = b.numel() ? b.data_ptr() : nullptr;
    p.xref = xref.numel() ? xref.data_ptr() : nullptr;
    p.yref = yref.numel() ? yref.data_ptr() : nullptr;
    p.dy = dy.numel() ? dy.data_ptr() : nullptr;
    p.y = y.data_ptr();
    p.grad = int(grad);
    p.act = int(act);
    p.alpha = alpha;
    p.gain = gain;
    p.clamp = clamp;
    p.size_x = x.numel();
    p.size_b = b.numel() ? b.numel() : 1;
    p.step_b = b.numel() ? x.stride(dim) : 1;
    TORCH_CHECK(act >= kLinear && act <= kSwish, "bias_act: unknown activation index ", act);
    return y;
}

inline int64_t max_offset(const torch::Tensor& t) {
    int64_t m = 0;
    for (int64_t i = 0; i < t.dim(); i++) m += (t.size(i) - 1) * t.stride(i);
    return m;
}

inline torch::Tensor prepare_upfirdn2d(Upfirdn2dParams& p, const torch::Tensor& x, const torch::Tensor& f,
                                       int64_t upx, int64_t upy, int64_t downx, int64_t downy, int64_t padx0,
                                       int64_t padx1, int64_t pady0, int64_t pady1, bool flip, double gain) {
    check_floating(x, "upfirdn2d: x");
    TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be [N, C, H, W], got ", x.dim(), " dimensions");
    TORCH_CHECK(f.dim() == 2, "upfirdn2d: f must be 2-D [fh, fw] here (fused.py splits separable filters)");
    TORCH_CHECK(f.dtype() == torch::kFloat, "upfirdn2d: f must be float32");
    TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f must be on x's device");
    TORCH_CHECK(x.numel() > 0 && f.numel() > 0, "upfirdn2d: x and f must be non-empty");
    TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, "upfirdn2d: up and down factors must be >= 1");
    TORCH_CHECK(x.size(3) * upx + padx0 + padx1 <= INT_MAX && x.size(2) * upy + pady0 + pady1 <= INT_MAX,
                "upfirdn2d: image too large");
    const int64_t out_w = (x.size(3) * upx + padx0 + padx1 - f.size(1) + downx) / downx;
    const int64_t out_h = (x.size(2) * upy + pady0 + pady1 - f.size(0) + downy) / downy;
    TORCH_CHECK(x.size(3) * upx + padx0 + padx1 >= f.size(1) && x.size(2) * upy + pady0 + pady1 >= f.size(0),
                "upfirdn2d: the padded, upsampled image is smaller than the filter");
    TORCH_CHECK(out_w >= 1 && out_h >= 1, "upfirdn2d: output would be empty");
    const auto fmt = x.suggest_memory_format();
    torch::Tensor y = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options().memory_format(fmt));
    TORCH_CHECK(max_offset(x) <= INT_MAX && max_offset(y) <= INT_MAX, "upfirdn2d: tensor too large");

    p.x = x.data_ptr();
    p.f = f.data_ptr<float>();
    p.y = y.data_ptr();
    p.up_x = int(upx); p.up_y = int(upy); p.down_x = int(downx); p.down_y = int(downy);
    p.pad_x0 = int(padx0); p.pad_y0 = int(pady0);
    p.flip = flip ? 1 : 0;
    p.gain = gain;
    p.in_w = int(x.size(3)); p.in_h = int(x.size(2)); p.in_c = int(x.size(1)); p.in_n = int(x.size(0));
    p.in_sw = x.stride(3); p.in_sh = x.stride(2); p.in_sc = x.stride(1); p.in_sn = x.stride(0);
    p.f_w = int(f.size(1)); p.f_h = int(f.size(0));
    p.f_sw = f.stride(1); p.f_sh = f.stride(0);
    p.out_w = int(out_w); p.out_h = int(out_h); p.out_c = int(y.size(1)); p.out_n = int(y.size(0));
    p.out_sw = y.stride(3); p.out_sh = y.stride(2); p.out_sc = y.stride(1); p.out_sn = y.stride(0);
    p.channels_last = (fmt == at::MemoryFormat::ChannelsLast) ? 1 : 0;
    p.size_out = y.numel();
    return y;
}

// Dynamic shared memory a filtered_lrelu tile may use (the default limit of every CUDA GPU since Kepler).
constexpr int64_t kFlreluSmemLimit = 48 * 1024;

// Validates the arguments of filtered_lrelu, allocates the output (contiguous NCHW) and, with write_signs, the sign
// bytes [N, C, tmp_h, tmp_w] (zeros), and fills the kernel parameters. With a non-empty si the sign bytes are read
// from si, whose pixel (t + sy, t + sx) belongs to this operation's tmp pixel (t, t) (see filtered_lrelu.h).
inline std::tuple<torch::Tensor, torch::Tensor> prepare_filtered_lrelu(
    FilteredLreluParams& p, const torch::Tensor& x, const torch::Tensor& fu, const torch::Tensor& fd,
    const torch::Tensor& b, const torch::Tensor& si, int64_t up, int64_t down, int64_t px0, int64_t px1,
    int64_t py0, int64_t py1, int64_t sx, int64_t sy, double gain, double slope, double clamp, bool flip,
    bool write_signs) {
    check_floating(x, "filtered_lrelu: x");
    TORCH_CHECK(x.dim() == 4, "filtered_lrelu: x must be [N, C, H, W], got ", x.dim(), " dimensions");
    TORCH_CHECK(x.numel() > 0, "filtered_lrelu: x must be non-empty");
    for (const torch::Tensor* f : {&fu, &fd}) {
        TORCH_CHECK(f->dim() == 1 || f->dim() == 2, "filtered_lrelu: fu and fd must be [taps] or [fh, fw]");
        TORCH_CHECK(f->dtype() == torch::kFloat && f->device() == x.device() && f->is_contiguous(),
                    "filtered_lrelu: fu and fd must be contiguous float32 tensors on x's device");
        TORCH_CHECK(f->numel() > 0, "filtered_lrelu: fu and fd must be non-empty (ones([1, 1]) for identity)");
    }
    TORCH_CHECK(b.numel() == 0 || (b.dim() == 1 && b.size(0) == x.size(1) && b.dtype() == x.dtype() &&
                                   b.device() == x.device() && b.is_contiguous()),
                "filtered_lrelu: b must be a contiguous [C] tensor of x's dtype and device (empty for no bias)");
    TORCH_CHECK(up >= 1 && down >= 1, "filtered_lrelu: up and down must be >= 1");
    TORCH_CHECK(gain > 0 && slope >= 0, "filtered_lrelu: gain must be > 0 and slope >= 0");
    TORCH_CHECK(!(write_signs && si.numel() > 0), "filtered_lrelu: cannot both read and write the sign bytes");
    TORCH_CHECK(x.size(3) * up + px0 + px1 <= INT_MAX / 2 && x.size(2) * up + py0 + py1 <= INT_MAX / 2,
                "filtered_lrelu: image too large");

    p.fu_sep = fu.dim() == 1 ? 1 : 0;
    p.fd_sep = fd.dim() == 1 ? 1 : 0;
    p.fu_w = int(fu.size(-1));
    p.fu_h = int(fu.size(0));
    p.fd_w = int(fd.size(-1));
    p.fd_h = int(fd.size(0));
    const int64_t tmp_w = x.size(3) * up + px0 + px1 - p.fu_w + 1;
    const int64_t tmp_h = x.size(2) * up + py0 + py1 - p.fu_h + 1;
    TORCH_CHECK(tmp_w >= p.fd_w && tmp_h >= p.fd_h,
                "filtered_lrelu: the upsampled, padded and filtered image is smaller than fd (empty output)");
    const int64_t out_w = (tmp_w - p.fd_w) / down + 1;
    const int64_t out_h = (tmp_h - p.fd_h) / down + 1;

    torch::Tensor y = torch::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    torch::Tensor so = torch::empty({0}, x.options().dtype(torch::kUInt8));
    if (write_signs) so = torch::zeros({x.size(0), x.size(1), tmp_h, tmp_w}, x.options().dtype(torch::kUInt8));
    if (si.numel() > 0) {
        TORCH_CHECK(si.dim() == 4 && si.size(0) == x.size(0) && si.size(1) == x.size(1) &&
                        si.dtype() == torch::kUInt8 && si.device() == x.device() && si.is_contiguous(),
                    "filtered_lrelu: si must be the contiguous uint8 [N, C, h, w] sign tensor of the forward pass");
    }
    TORCH_CHECK(max_offset(x) <= INT64_MAX / 2 && y.numel() < INT_MAX && so.numel() < INT64_MAX / 2,
                "filtered_lrelu: tensor too large");

    p.x = x.data_ptr();
    p.b = b.numel() ? b.data_ptr() : nullptr;
    p.fu = fu.data_ptr<float>();
    p.fd = fd.data_ptr<float>();
    p.y = y.data_ptr();
    p.up = int(up);
    p.down = int(down);
    p.pad_x0 = int(px0);
    p.pad_y0 = int(py0);
    p.flip = flip ? 1 : 0;
    p.gain = gain;
    p.slope = slope;
    p.clamp = clamp;
    p.in_w = int(x.size(3));
    p.in_h = int(x.size(2));
    p.channels = int(x.size(1));
    p.in_sw = x.stride(3); p.in_sh = x.stride(2); p.in_sc = x.stride(1); p.in_sn = x.stride(0);
    p.out_w = int(out_w);
    p.out_h = int(out_h);
    p.out_sw = y.stride(3); p.out_sh = y.stride(2); p.out_sc = y.stride(1); p.out_sn = y.stride(0);
    p.tmp_w = int(tmp_w);
    p.tmp_h = int(tmp_h);
    if (write_signs) {
        p.sign_mode = kSignsWrite;
        p.signs = so.data_ptr<uint8_t>();
        p.s_w = int(tmp_w); p.s_h = int(tmp_h); p.sx = 0; p.sy = 0;
    } else if (si.numel() > 0) {
        p.sign_mode = kSignsRead;
        p.signs = const_cast<uint8_t*>(si.data_ptr<uint8_t>());
        p.s_w = int(si.size(3)); p.s_h = int(si.size(2)); p.sx = int(sx); p.sy = int(sy);
    } else {
        p.sign_mode = kSignsNone;
        p.signs = nullptr;
        p.s_w = p.s_h = p.sx = p.sy = 0;
    }
    const int64_t elem = (x.scalar_type() == torch::kDouble) ? 8 : 4;
    TORCH_CHECK(flrelu_choose_tiles(p, elem, kFlreluSmemLimit),
                "filtered_lrelu: filters too large for the fused kernel (", p.fu_h, "x", p.fu_w, ", ", p.fd_h, "x",
                p.fd_w, "); use impl='ref'");
    p.num_items = x.size(0) * x.size(1) * int64_t(p.tiles_x) * p.tiles_y;
    return {y, so};
}

}  // namespace sgt
