// linear: y = x @ dequant(W).T (+ bias), float32 accumulation; converts x to f32 and y back to x's dtype.
#include <vector>

#include "cpu/common.h"
#include "cpu/kernels.h"
#include "cpu/linear.h"
#include "cpu/threads.h"

namespace fourbit {

void linear(const QW& w, const void* x, DType dt, int64_t M, const void* bias, void* y) {
  const int64_t K = w.K, N = w.N;
  std::vector<float> xf, yf;
  const float* xp = static_cast<const float*>(x);
  if (dt != DType::F32) {  // bf16/fp16 -> f32 exactly, once (M*K is small next to the weight)
    xf.resize(size_t(M * K));
    load_to_f32(dt, x, xf.data(), M * K);
    xp = xf.data();
  }
  float* yp = static_cast<float*>(y);
  if (dt != DType::F32) { yf.resize(size_t(M * N)); yp = yf.data(); }
  linear_f32(w, xp, M, yp);
  if (bias == nullptr && dt == DType::F32) return;
  std::vector<float> bf;
  if (bias) { bf.resize(size_t(N)); load_to_f32(dt, bias, bf.data(), N); }
  for (int64_t m = 0; m < M; ++m) {
    float* row = yp + m * N;
    if (bias) for (int64_t n = 0; n < N; ++n) row[n] = row[n] + bf[n];
    if (dt != DType::F32) store_from_f32(dt, static_cast<uint16_t*>(y) + m * N, row, N);
  }
}

}  // namespace fourbit
