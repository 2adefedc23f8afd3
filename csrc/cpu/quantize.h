// Quantization entry point and format identifiers (quantize.cpp).
#pragma once
#include <string>
#include "cpu/common.h"

namespace fourbit {

// Format + variant in one id.
enum class Fmt : int { INT4_SYM, INT4_ASYM, NF4, BNB_FP4, NVFP4, MXFP4_FLOOR, MXFP4_RCEIL, INT8_SYM, INT8_ASYM };

// All inputs/outputs of one quantize call (raw pointers from Python) plus per-format precomputed tables.
struct QSpec {
  Fmt fmt;
  const void* w; DType dt; int64_t esize;  // input [N, K]
  int64_t N, K, G;
  uint8_t* q;           // [N, K/2] packed or [N, K] bytes
  void* scales;         // f32 or bytes [N, K/G]
  uint8_t* zeros;       // [N, K/G] (asym) or null
  float* gscale_out;    // [1] (nvfp4) or null
  float gscale = 1.0f;
  float bounds[15] = {};
  uint8_t sorted_codes[16] = {};
  uint8_t zero_code = 0;
};

Fmt parse_format(const std::string& f, const std::string& v);
void format_lut(Fmt fmt, float* lut);
void quantize(QSpec P);

}  // namespace fourbit
