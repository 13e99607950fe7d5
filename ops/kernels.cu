// sgtrain fused ops: CUDA kernels. bias_act and upfirdn2d: each thread computes whole output elements with the
// header functions of bias_act.h and upfirdn2d.h; filtered_lrelu: each block computes whole output tiles in shared
// memory with filtered_lrelu.h. The loops are grid-strided so any size fits any grid.
#include <c10/cuda/CUDAStream.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>

#include <algorithm>

#include "bias_act.h"
#include "filtered_lrelu.h"
#include "upfirdn2d.h"

namespace sgt {

namespace {

constexpr int kThreads = 256;

inline unsigned grid_for(int64_t n) {
    const int64_t blocks = (n + kThreads - 1) / kThreads;
    return unsigned(std::max<int64_t>(1, std::min<int64_t>(blocks, 65535LL * 32)));
}

template <class T, int A>
__global__ void bias_act_kernel(BiasActParams p) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.size_x; i += stride)
        bias_act_element<T, A>(p, i);
}

template <class T>
struct BiasActLauncher {
    const BiasActParams& p;
    cudaStream_t stream;
    template <int A>
    void run() {
        bias_act_kernel<T, A><<<grid_for(p.size_x), kThreads, 0, stream>>>(p);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
};

template <class T, int UX, int UY, int DX, int DY, int MAXW, int MAXH>
__global__ void upfirdn2d_kernel(Upfirdn2dParams p) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.size_out; i += stride)
        upfirdn2d_element<T, UX, UY, DX, DY, MAXW, MAXH>(p, i);
}

template <class T>
struct Upfirdn2dLauncher {
    const Upfirdn2dParams& p;
    cudaStream_t stream;
    template <int UX, int UY, int DX, int DY, int MAXW, int MAXH>
    void run() {
        upfirdn2d_kernel<T, UX, UY, DX, DY, MAXW, MAXH><<<grid_for(p.size_out), kThreads, 0, stream>>>(p);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
};

template <class T>
__global__ void __launch_bounds__(kThreads) filtered_lrelu_kernel(FilteredLreluParams p) {
    using S = typename Acc<T>::type;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    S* sm = reinterpret_cast<S*>(smem_raw);
    for (int64_t item = blockIdx.x; item < p.num_items; item += gridDim.x)
        filtered_lrelu_tile<T>(p, item, sm, int(threadIdx.x), int(blockDim.x));
}

}  // namespace

void launch_bias_act(const BiasActParams& p, c10::ScalarType dtype) {
    if (p.size_x == 0) return;
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "sgtrain_bias_act", [&] {
        BiasActLauncher<scalar_t> launcher{p, stream};
        TORCH_CHECK(dispatch_bias_act(p.act, launcher), "bias_act: unknown activation index ", p.act);
    });
}

void launch_upfirdn2d(const Upfirdn2dParams& p, c10::ScalarType dtype) {
    if (p.size_out == 0) return;
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "sgtrain_upfirdn2d", [&] {
        Upfirdn2dLauncher<scalar_t> launcher{p, stream};
        dispatch_upfirdn2d(p, launcher);
    });
}

void launch_filtered_lrelu(const FilteredLreluParams& p, c10::ScalarType dtype) {
    if (p.num_items == 0) return;
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const unsigned grid = unsigned(std::min<int64_t>(p.num_items, 65535LL * 32));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "sgtrain_filtered_lrelu", [&] {
        using S = typename Acc<scalar_t>::type;
        const size_t smem = size_t(p.smem_elems) * sizeof(S);
        filtered_lrelu_kernel<scalar_t><<<grid, kThreads, smem, stream>>>(p);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
}

}  // namespace sgt
