// sgtrain fused ops: definitions shared by the CUDA kernels and the host (CPU) emulation build.
//
// Every per-element computation lives in a header as a function that compiles for both the device (nvcc) and the
// host (g++). The CUDA kernels are thin loops around these functions; cpu_emulation.cpp runs the very same
// functions in plain loops, so the arithmetic and index maths of the kernels can be tested on a machine
// without a GPU (tests/test_ops_fused.py).
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SGT_HD __host__ __device__ __forceinline__
#else
#define SGT_HD inline
#endif

namespace sgt {

// Arithmetic type used inside the kernels: reduced-precision storage types compute in float32.
template <class T> struct Acc { using type = T; };
template <> struct Acc<c10::Half> { using type = float; };
template <> struct Acc<c10::BFloat16> { using type = float; };

SGT_HD float fexp(float v) { return expf(v); }
SGT_HD double fexp(double v) { return exp(v); }
SGT_HD float flog(float v) { return logf(v); }
SGT_HD double flog(double v) { return log(v); }
SGT_HD float flog1p(float v) { return log1pf(v); }
SGT_HD double flog1p(double v) { return log1p(v); }
SGT_HD float fexpm1(float v) { return expm1f(v); }
SGT_HD double fexpm1(double v) { return expm1(v); }
SGT_HD float ftanh(float v) { return tanhf(v); }
SGT_HD double ftanh(double v) { return tanh(v); }

// Floor division for a possibly negative numerator and a positive denominator.
SGT_HD int floor_div(int a, int b) {
    int q = a / b;
    return (q * b > a) ? q - 1 : q;
}

// Non-negative remainder for a positive denominator.
SGT_HD int pos_mod(int a, int b) {
    int r = a % b;
    return (r < 0) ? r + b : r;
}

}  // namespace sgt
