// Weight quantization for every fourbit format (rules in the task spec / FORMATS.md), threaded over rows and
// compiled for AVX-512 / AVX2 / baseline with runtime dispatch (the loops in quant_impl.h auto-vectorize).
#include <immintrin.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/common.h"
#include "cpu/quantize.h"
#include "cpu/kernels.h"
#include "cpu/threads.h"

namespace fourbit {

// FP4 E2M1 encode of a finite value: nearest code, ties to the even code, |v| > 5 saturates to 6, sign bit kept
// (so -0 and negatives that round to 0 give 0b1000).
static inline uint8_t e2m1_encode(float v) {
  const float a = std::fabs(v);
  int c = (a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) + (a > 5.0f);
  return uint8_t(c | (std::signbit(v) ? 8 : 0));
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
namespace q512 {
#include "cpu/quant_impl.h"
}
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace q256 {
#include "cpu/quant_impl.h"
}
#pragma GCC pop_options
namespace qscalar {
#include "cpu/quant_impl.h"
}

// NF4 codebook (code 0..15), exactly the float32 values of FORMATS.md (already ascending).
static const float kNF4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                               -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                               0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f,
                               0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
                               0.7229568362236023f, 1.0f};

// Fill lut[16] with the codebook of fmt (code -> value); used by quantize (bounds) and exported to Python.
void format_lut(Fmt fmt, float* lut) {
  static const float fp4[16] = {0, 0.0625f, 8, 12, 4, 6, 2, 3, -0.0f, -0.0625f, -8, -12, -4, -6, -2, -3};
  static const float e2m1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (int c = 0; c < 16; ++c) {
    switch (fmt) {
      case Fmt::INT4_SYM: lut[c] = float(c - 8); break;
      case Fmt::INT4_ASYM: lut[c] = float(c); break;
      case Fmt::NF4: lut[c] = kNF4[c]; break;
      case Fmt::BNB_FP4: lut[c] = fp4[c] / 12.0f; break;
      default: lut[c] = c < 8 ? e2m1[c] : -e2m1[c - 8]; break;
    }
  }
}

// Parse (format, variant) strings.
Fmt parse_format(const std::string& f, const std::string& v) {
  if (f == "int4") return v == "asym" ? Fmt::INT4_ASYM : Fmt::INT4_SYM;
  if (f == "int8") return v == "asym" ? Fmt::INT8_ASYM : Fmt::INT8_SYM;
  if (f == "nf4") return Fmt::NF4;
  if (f == "bnb_fp4" || f == "fp4") return Fmt::BNB_FP4;
  if (f == "nvfp4") return Fmt::NVFP4;
  if (f == "mxfp4") return v == "rceil" ? Fmt::MXFP4_RCEIL : Fmt::MXFP4_FLOOR;
  throw std::invalid_argument("unknown format " + f);
}

void quantize(QSpec P) {
  if (P.fmt == Fmt::NF4 || P.fmt == Fmt::BNB_FP4) {
    // Stable ascending sort of the codebook (insertion sort keeps equal values, 0 and -0, in code order),
    // bounds = midpoints in float32.
    float lut[16]; format_lut(P.fmt, lut);
    int order[16];
    for (int i = 0; i < 16; ++i) {
      int j = i;
      while (j > 0 && lut[order[j - 1]] > lut[i]) { order[j] = order[j - 1]; --j; }
      order[j] = i;
    }
    for (int i = 0; i < 16; ++i) P.sorted_codes[i] = uint8_t(order[i]);
    for (int i = 0; i < 15; ++i) P.bounds[i] = (lut[order[i]] + lut[order[i + 1]]) / 2.0f;
    P.zero_code = P.fmt == Fmt::NF4 ? 7 : 0;
  }
  const int isa = active_isa();
  if (P.fmt == Fmt::NVFP4) {
    std::vector<float> part(size_t(P.N), 0.0f);
    parallel_for(P.N, 1, [&](int64_t n0, int64_t n1) {
      std::vector<float> buf(size_t(P.K));
      for (int64_t n = n0; n < n1; ++n)
        part[n] = isa == 2 ? q512::finite_absmax_rows(P, n, n + 1, buf.data())
                : isa == 1 ? q256::finite_absmax_rows(P, n, n + 1, buf.data())
                           : qscalar::finite_absmax_rows(P, n, n + 1, buf.data());
    });
    float A = 0.0f;
    for (float v : part) A = v > A ? v : A;
    float g = A / 2688.0f;
    if (g == 0.0f) g = 1.0f;
    P.gscale = g;
    *P.gscale_out = g;
  }
  parallel_for(P.N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<float> buf(size_t(P.K));
    std::vector<uint8_t> cbuf(size_t(P.K));
    if (isa == 2) q512::quant_rows(P, n0, n1, buf.data(), cbuf.data());
    else if (isa == 1) q256::quant_rows(P, n0, n1, buf.data(), cbuf.data());
    else qscalar::quant_rows(P, n0, n1, buf.data(), cbuf.data());
  });
}

}  // namespace fourbit
