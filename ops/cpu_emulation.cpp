// sgtrain fused ops, host emulation: runs the kernels' per-element functions (bias_act.h, upfirdn2d.h) and the
// per-tile function of filtered_lrelu.h (one thread, so its barriers are no-ops) in plain loops on CPU tensors.
// It exists so that the kernels' arithmetic and index maths, and the autograd wiring in sgtrain/ops/fused.py, can
// be tested on machines without a GPU. It is never used for training.
#include <vector>

#include "ops_host.h"

namespace {

template <class T>
struct BiasActLoop {
    const sgt::BiasActParams& p;
    template <int A>
    void run() {
        for (int64_t i = 0; i < p.size_x; i++) sgt::bias_act_element<T, A>(p, i);
    }
};

template <class T>
struct Upfirdn2dLoop {
    const sgt::Upfirdn2dParams& p;
    template <int UX, int UY, int DX, int DY, int MAXW, int MAXH>
    void run() {
        for (int64_t i = 0; i < p.size_out; i++) sgt::upfirdn2d_element<T, UX, UY, DX, DY, MAXW, MAXH>(p, i);
    }
};

}  // namespace

static torch::Tensor bias_act(torch::Tensor x, torch::Tensor b, torch::Tensor xref, torch::Tensor yref,
                              torch::Tensor dy, int64_t grad, int64_t dim, int64_t act, double alpha, double gain,
                              double clamp) {
    TORCH_CHECK(x.device().is_cpu(), "bias_act (emulation): x must be a CPU tensor");
    sgt::BiasActParams p;
    torch::Tensor y = sgt::prepare_bias_act(p, x, b, xref, yref, dy, grad, dim, act, alpha, gain, clamp);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "sgtrain_bias_act_emu", [&] {
        BiasActLoop<scalar_t> loop{p};
        TORCH_CHECK(sgt::dispatch_bias_act(p.act, loop), "bias_act: unknown activation index ", p.act);
    });
    return y;
}

static torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int64_t upx, int64_t upy, int64_t downx,
                               int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                               double gain) {
    TORCH_CHECK(x.device().is_cpu(), "upfirdn2d (emulation): x must be a CPU tensor");
    sgt::Upfirdn2dParams p;
    torch::Tensor y = sgt::prepare_upfirdn2d(p, x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "sgtrain_upfirdn2d_emu", [&] {
        Upfirdn2dLoop<scalar_t> loop{p};
        sgt::dispatch_upfirdn2d(p, loop);
    });
    return y;
}

static std::tuple<torch::Tensor, torch::Tensor> filtered_lrelu(
    torch::Tensor x, torch::Tensor fu, torch::Tensor fd, torch::Tensor b, torch::Tensor si, int64_t up, int64_t down,
    int64_t px0, int64_t px1, int64_t py0, int64_t py1, int64_t sx, int64_t sy, double gain, double slope,
    double clamp, bool flip, bool write_signs) {
    TORCH_CHECK(x.device().is_cpu(), "filtered_lrelu (emulation): x must be a CPU tensor");
    sgt::FilteredLreluParams p;
    auto out = sgt::prepare_filtered_lrelu(p, x, fu, fd, b, si, up, down, px0, px1, py0, py1, sx, sy, gain, slope,
                                           clamp, flip, write_signs);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "sgtrain_filtered_lrelu_emu", [&] {
        using S = typename sgt::Acc<scalar_t>::type;
        std::vector<S> smem(size_t(p.smem_elems));
        for (int64_t item = 0; item < p.num_items; item++)
            sgt::filtered_lrelu_tile<scalar_t>(p, item, smem.data(), 0, 1);
    });
    return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "sgtrain fused ops, host emulation of the CUDA kernels (testing only)";
    m.def("bias_act", &bias_act);
    m.def("upfirdn2d", &upfirdn2d);
    m.def("filtered_lrelu", &filtered_lrelu);
    m.attr("backend") = "cpu-emulation";
}
