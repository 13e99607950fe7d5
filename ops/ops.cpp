// sgtrain fused ops: Python binding of the CUDA kernels (built by sgtrain/ops/build.py).
#include <c10/cuda/CUDAGuard.h>

#include "ops_host.h"

namespace sgt {
void launch_bias_act(const BiasActParams& p, c10::ScalarType dtype);
void launch_upfirdn2d(const Upfirdn2dParams& p, c10::ScalarType dtype);
void launch_filtered_lrelu(const FilteredLreluParams& p, c10::ScalarType dtype);
}  // namespace sgt

static torch::Tensor bias_act(torch::Tensor x, torch::Tensor b, torch::Tensor xref, torch::Tensor yref,
                              torch::Tensor dy, int64_t grad, int64_t dim, int64_t act, double alpha, double gain,
                              double clamp) {
    TORCH_CHECK(x.is_cuda(), "bias_act (fused): x must be a CUDA tensor; use the reference path on CPU");
    const c10::cuda::OptionalCUDAGuard guard(x.device());
    sgt::BiasActParams p;
    torch::Tensor y = sgt::prepare_bias_act(p, x, b, xref, yref, dy, grad, dim, act, alpha, gain, clamp);
    sgt::launch_bias_act(p, x.scalar_type());
    return y;
}

static torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int64_t upx, int64_t upy, int64_t downx,
                               int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                               double gain) {
    TORCH_CHECK(x.is_cuda(), "upfirdn2d (fused): x must be a CUDA tensor; use the reference path on CPU");
    const c10::cuda::OptionalCUDAGuard guard(x.device());
    sgt::Upfirdn2dParams p;
    torch::Tensor y = sgt::prepare_upfirdn2d(p, x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain);
    sgt::launch_upfirdn2d(p, x.scalar_type());
    return y;
}

static std::tuple<torch::Tensor, torch::Tensor> filtered_lrelu(
    torch::Tensor x, torch::Tensor fu, torch::Tensor fd, torch::Tensor b, torch::Tensor si, int64_t up, int64_t down,
    int64_t px0, int64_t px1, int64_t py0, int64_t py1, int64_t sx, int64_t sy, double gain, double slope,
    double clamp, bool flip, bool write_signs) {
    TORCH_CHECK(x.is_cuda(), "filtered_lrelu (fused): x must be a CUDA tensor; use the reference path on CPU");
    const c10::cuda::OptionalCUDAGuard guard(x.device());
    sgt::FilteredLreluParams p;
    auto out = sgt::prepare_filtered_lrelu(p, x, fu, fd, b, si, up, down, px0, px1, py0, py1, sx, sy, gain, slope,
                                           clamp, flip, write_signs);
    sgt::launch_filtered_lrelu(p, x.scalar_type());
    return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "sgtrain fused CUDA ops (bias_act, upfirdn2d, filtered_lrelu)";
    m.def("bias_act", &bias_act, "Fused bias + activation + gain + clamp and its first/second derivatives");
    m.def("upfirdn2d", &upfirdn2d, "Fused upsample + pad + FIR filter + downsample");
    m.def("filtered_lrelu", &filtered_lrelu,
          "Fused bias + upsample + FIR + leaky ReLU/clamp + FIR + downsample, with sign bytes for the gradient");
    m.attr("backend") = "cuda";
}
