// Compiles kernels_impl.h for three ISAs and dispatches at run time, so one binary runs on any x86-64.
#include <immintrin.h>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <vector>
#include <stdexcept>
#include <string>

#include "cpu/common.h"
#include "cpu/kernels.h"
#include "cpu/threads.h"

namespace fourbit {

const ScaleTables kScaleTables;

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
namespace k512 {
#define FOURBIT_SIMD_AVX512 1
#include "cpu/simd.h"
#include "cpu/kernels_impl.h"
#undef FOURBIT_SIMD_AVX512
}  // namespace k512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace k256 {
#define FOURBIT_SIMD_AVX2 1
#include "cpu/simd.h"
#include "cpu/kernels_impl.h"
#undef FOURBIT_SIMD_AVX2
}  // namespace k256
#pragma GCC pop_options

namespace kscalar {
#include "cpu/simd.h"
#include "cpu/kernels_impl.h"
}  // namespace kscalar

namespace {
// Best ISA this CPU supports.
int detect_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;  // every AVX2+FMA CPU has F16C
  return 0;
}
int g_isa = -1;
}  // namespace

int active_isa() {
  if (g_isa < 0) {
    const char* env = std::getenv("FOURBIT_ISA");
    set_isa(env ? env : "auto");
  }
  return g_isa;
}

void set_isa(const char* name) {
  std::string s(name);
  int best = detect_isa(), want;
  if (s == "auto") want = best;
  else if (s == "avx512") want = 2;
  else if (s == "avx2") want = 1;
  else if (s == "scalar") want = 0;
  else throw std::invalid_argument("unknown ISA " + s);
  if (want > best) throw std::runtime_error("ISA " + s + " not supported by this CPU");
  g_isa = want;
}

void dequantize_all(const QW& w, DType t, void* out) {
  int isa = active_isa();
  parallel_for(w.N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<float> tmp(t == DType::F32 ? 0 : size_t(w.K));
    if (isa == 2) k512::dequant_rows(w, n0, n1, t, out, tmp.data());
    else if (isa == 1) k256::dequant_rows(w, n0, n1, t, out, tmp.data());
    else kscalar::dequant_rows(w, n0, n1, t, out, tmp.data());
  });
}

// M at or below which the register-decoding GEMV beats dequantize-tile + GEMM (measured on Zen 4, 2 threads).
constexpr int64_t kGemvMaxM = 16;

void linear_f32(const QW& w, const float* x, int64_t M, float* y) {
  int isa = active_isa();
  if (M <= kGemvMaxM) {
    // Chunks of whole 4-row blocks so every thread uses the R=4 kernel.
    parallel_for(w.N, 4, [&](int64_t n0, int64_t n1) {
      if (isa == 2) k512::gemv_rows(w, x, M, n0, n1, y);
      else if (isa == 1) k256::gemv_rows(w, x, M, n0, n1, y);
      else kscalar::gemv_rows(w, x, M, n0, n1, y);
    });
    return;
  }
  const int64_t nr = isa == 2 ? k512::kNR : isa == 1 ? k256::kNR : kscalar::kNR;
  const int64_t tiles = (w.N + nr - 1) / nr;
  parallel_for(tiles, 1, [&](int64_t t0, int64_t t1) {
    if (isa == 2) k512::gemm_tiles(w, x, M, t0, t1, y);
    else if (isa == 1) k256::gemm_tiles(w, x, M, t0, t1, y);
    else kscalar::gemm_tiles(w, x, M, t0, t1, y);
  });
}

}  // namespace fourbit
