// sgtrain fused ops, host emulation: runs the kernels' per-element functions (bias_act.h, upfirdn2d.h) in
// plain loops on CPU tensors. It exists so that the kernels' arithmetic and index maths, and the autograd
// wiring in sgtrain/ops/fused.py, can be tested on machines without a GPU. It is never used for training.
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "sgtrain fused ops, host emulation of the CUDA kernels (testing only)";
    m.def("bias_act", &bias_act);
    m.def("upfirdn2d", &upfirdn2d);
    m.attr("backend") = "cpu-emulation";
}
