// sgtrain fused ops: argument checks and parameter setup shared by the CUDA binding (ops.cpp) and the host
// emulation (cpu_emulation.cpp). The Python side (sgtrain/ops/fused.py) calls
//   bias_act(x, b, xref, yref, dy, grad, dim, act, alpha, gain, clamp) -> Tensor
//   upfirdn2d(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain) -> Tensor
// with empty tensors standing for "absent".
#pragma once

#include <torch/extension.h>

#include <climits>

#include "bias_act.h"
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

}  // namespace sgt
