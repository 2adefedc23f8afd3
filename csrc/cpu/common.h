// Shared scalar helpers for the fourbit CPU kernels: float format conversions, enums, the quantized-weight view.
// Everything here is `static inline` (internal linkage) so that ISA-specific translation regions can include it
// without sharing COMDAT copies compiled for a wider ISA.
#pragma once
#include <cstdint>
#include <cstring>
#include <cmath>

namespace fourbit {

// Element dtypes passed from Python as strings ("float32", "bfloat16", "float16").
enum class DType : int { F32 = 0, BF16 = 1, F16 = 2 };
// Scale dtypes: float32, float8_e4m3fn, float8_e8m0fnu.
enum class SKind : int { F32 = 0, E4M3 = 1, E8M0 = 2 };
// Weight storage: packed nibbles + 16-entry LUT, int8, uint8.
enum class QKind : int { NIB4 = 0, S8 = 1, U8 = 2 };

// Bit cast float -> uint32.
static inline uint32_t f2u(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
// Bit cast uint32 -> float.
static inline float u2f(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// bf16 bits -> f32 (exact).
static inline float bf16_to_f32(uint16_t h) { return u2f(uint32_t(h) << 16); }
// f32 -> bf16 bits, round to nearest even; NaN stays (quiet) NaN with its sign.
static inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f2u(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
// fp16 bits -> f32 (exact, subnormals included).
static inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0x1f) return u2f(sign | 0x7f800000u | (m << 13));
  if (e == 0) {  // zero or subnormal: m * 2^-24, exact in f32
    float v = float(m) * u2f(0x33800000u);
    return u2f(f2u(v) | sign);
  }
  return u2f(sign | ((e + 112) << 23) | (m << 13));
}
// f32 -> fp16 bits, round to nearest even, overflow -> Inf, NaN stays NaN, subnormals handled.
static inline uint16_t f32_to_f16(float f) {
  uint32_t u = f2u(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ff));
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 rounds to Inf
  if (a < 0x38800000u) {  // below 2^-14: fp16 subnormal, quantum 2^-24; a*2^24 rounds RNE via float add trick
    float v = u2f(a) * 16777216.0f;                      // exact (power-of-two scaling, no overflow)
    float r = (v + 12582912.0f) - 12582912.0f;           // RNE to integer (|v| < 2^22)
    return uint16_t(sign | uint32_t(r));
  }
  uint32_t m = a + 0xfffu + ((a >> 13) & 1u);  // RNE at bit 13
  return uint16_t(sign | (((m >> 13) - (112u << 10)) & 0xffffu));
}

// Round half to even to an integer-valued float; valid for |v| < 2^22 (all callers are bounded), exact in default
// rounding mode. Written with adds so compilers vectorize it.
static inline float rne_small(float v) {
  float a = std::fabs(v);
  float r = (a + 12582912.0f) - 12582912.0f;
  return std::copysign(r, v);
}

// OCP E4M3 (float8_e4m3fn) byte -> f32, exact: bias 7, subnormals m*2^-9, 0x7F/0xFF NaN, no Inf.
static inline float e4m3_to_f32(uint8_t b) {
  uint32_t s = b >> 7, e = (b >> 3) & 0xf, m = b & 7;
  float v;
  if (e == 15 && m == 7) v = u2f(0x7fc00000u);
  else if (e == 0) v = float(m) * 0.001953125f;  // 2^-9
  else v = u2f(((e + 120) << 23) | (m << 20));
  return s ? -v : v;
}
// Non-negative finite f32 -> E4M3 byte, RNE, saturating to 448 (0x7E); values <= 2^-10 become 0 (tie to even).
static inline uint8_t f32_to_e4m3_pos(float f) {
  if (!(f < 464.0f) ) return 0x7e;  // >= 464 would round to 480 (not representable): saturate
  if (f < 0.015625f) {             // below 2^-6: subnormal grid 2^-9
    float r = rne_small(f * 512.0f);  // exact scaling, RNE to integer in [0, 8]; 8 encodes 2^-6 (0x08)
    return uint8_t(r);
  }
  uint32_t u = f2u(f), e = (u >> 23) - 127 + 7, mant = u & 0x7fffffu;
  uint32_t r = mant >> 20, rem = mant & 0xfffffu;
  uint32_t up = (rem > 0x80000u) || (rem == 0x80000u && (r & 1u));
  uint32_t v = (e << 3) + r + up;
  return uint8_t(v > 0x7e ? 0x7e : v);
}
// E8M0 byte -> f32: 2^(b-127), b=255 NaN; b=0 gives the f32 subnormal 2^-127.
static inline float e8m0_to_f32(uint8_t b) {
  if (b == 255) return u2f(0x7fc00000u);
  if (b == 0) return u2f(0x00400000u);
  return u2f(uint32_t(b) << 23);
}
// 256-entry decode tables for the 8-bit scale formats (branch-free scale decode in the GEMV inner loop: with
// G=16 a table lookup instead of the branchy decoder took nvfp4 M=1 GEMV at 4096x4096 from 2.6 ms to 0.66 ms).
struct ScaleTables {
  float e4m3[256], e8m0[256];
  ScaleTables() { for (int b = 0; b < 256; ++b) { e4m3[b] = e4m3_to_f32(uint8_t(b)); e8m0[b] = e8m0_to_f32(uint8_t(b)); } }
};
extern const ScaleTables kScaleTables;  // defined in kernels.cpp
// Decode one stored scale of the given kind.
static inline float decode_scale(SKind k, const void* p, int64_t i) {
  if (k == SKind::F32) return static_cast<const float*>(p)[i];
  uint8_t b = static_cast<const uint8_t*>(p)[i];
  return k == SKind::E4M3 ? kScaleTables.e4m3[b] : kScaleTables.e8m0[b];
}
// Load element i of a float32/bf16/fp16 array as f32 (exact).
static inline float load_as_f32(DType t, const void* p, int64_t i) {
  if (t == DType::F32) return static_cast<const float*>(p)[i];
  uint16_t h = static_cast<const uint16_t*>(p)[i];
  return t == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}
// Convert n f32 values into dst of dtype t (RNE).
static inline void store_from_f32(DType t, void* dst, const float* src, int64_t n) {
  if (t == DType::F32) { std::memcpy(dst, src, size_t(n) * 4); return; }
  uint16_t* d = static_cast<uint16_t*>(dst);
  if (t == DType::BF16) for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
  else for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
}
// Convert n values of dtype t into f32.
static inline void load_to_f32(DType t, const void* src, float* dst, int64_t n) {
  if (t == DType::F32) { std::memcpy(dst, src, size_t(n) * 4); return; }
  const uint16_t* s = static_cast<const uint16_t*>(src);
  if (t == DType::BF16) for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
  else for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
}

// Read-only view of a quantized weight W [N, K] with groups of G along K (the dequantization contract).
struct QW {
  QKind kind;
  const uint8_t* q;      // NIB4: [N, K/2]; S8/U8: [N, K]
  int64_t N, K, G;
  SKind skind;
  const void* scales;    // [N, K/G]
  const uint8_t* zeros;  // [N, K/G] or null
  const float* gscale;   // [1] or null
  const float* lut;      // 16 entries for NIB4, else null
  int64_t ng() const { return K / G; }
};

// Per-group dequantization parameters: v = ((c - z) * s) * g, each step only when present.
struct GroupParams { float z, s, g; bool hz, hg; };
// Fetch the parameters of group j of row n.
static inline GroupParams group_params(const QW& w, int64_t n, int64_t j) {
  GroupParams p;
  int64_t i = n * w.ng() + j;
  p.s = decode_scale(w.skind, w.scales, i);
  p.hz = w.zeros != nullptr; p.z = p.hz ? float(w.zeros[i]) : 0.0f;
  p.hg = w.gscale != nullptr; p.g = p.hg ? w.gscale[0] : 1.0f;
  return p;
}
// Apply the contract's order of operations to a code value c.
static inline float apply_params(const GroupParams& p, float c) {
  float t = p.hz ? c - p.z : c;
  t = t * p.s;
  return p.hg ? t * p.g : t;
}
// Scalar decode of element k of row n (the reference path for tails).
static inline float decode1(const QW& w, const GroupParams& p, int64_t n, int64_t k) {
  float c;
  if (w.kind == QKind::NIB4) c = w.lut[(w.q[n * (w.K / 2) + k / 2] >> (4 * (k & 1))) & 15];
  else if (w.kind == QKind::S8) c = float(reinterpret_cast<const int8_t*>(w.q)[n * w.K + k]);
  else c = float(w.q[n * w.K + k]);
  return apply_params(p, c);
}
// Build the 16-entry dequantized LUT of one group of a 4-bit weight (bit-exact per code).
static inline void group_lut(const QW& w, const GroupParams& p, float* out16) {
  for (int c = 0; c < 16; ++c) out16[c] = apply_params(p, w.lut[c]);
}

}  // namespace fourbit
