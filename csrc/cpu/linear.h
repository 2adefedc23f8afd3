// linear entry point (linear.cpp).
#pragma once
#include "cpu/common.h"

namespace fourbit {
// y[M, N] (dtype dt) = x[M, K] (dtype dt) @ dequant(w).T + bias[N] (dtype dt, or null).
void linear(const QW& w, const void* x, DType dt, int64_t M, const void* bias, void* y);
}  // namespace fourbit
