// Entry points of the ISA-dispatched dequantize / linear kernels (kernels.cpp).
#pragma once
#include "cpu/common.h"

namespace fourbit {

// Selected ISA: 2 = AVX-512 (F/BW/VL/DQ), 1 = AVX2+FMA+F16C, 0 = portable scalar.
int active_isa();
// Force an ISA ("auto", "avx512", "avx2", "scalar"); used by tests to cover every path on one machine.
void set_isa(const char* name);
// Dequantize W into out [N, K] of dtype t (threaded over rows).
void dequantize_all(const QW& w, DType t, void* out);
// y[M, N] (f32) = x[M, K] (f32) @ dequant(W).T, threaded over N.
void linear_f32(const QW& w, const float* x, int64_t M, float* y);

}  // namespace fourbit
