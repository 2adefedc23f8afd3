// Tiny SIMD wrappers with one interface for AVX-512 (16 lanes), AVX2+FMA (8 lanes) and scalar (1 lane), so the
// decode/GEMV/GEMM code in kernels_impl.h is written once. Include only inside the matching `#pragma GCC target`
// region. Every 4-bit decode is bit-exact: it looks codes up in a per-group LUT that already holds
// ((lut[c] - z) * s) * g, so permutes replace the arithmetic.

#include <immintrin.h>
#include <cstdint>
#include <cstring>

#define FB_INL __attribute__((always_inline)) inline

#if defined(FOURBIT_SIMD_AVX512)
struct Simd {
  static constexpr int W = 16;
  using V = __m512;
  struct Lut { __m512 t; };
  static FB_INL V zero() { return _mm512_setzero_ps(); }
  static FB_INL V set1(float a) { return _mm512_set1_ps(a); }
  static FB_INL V load(const float* p) { return _mm512_loadu_ps(p); }
  static FB_INL void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static FB_INL V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static FB_INL V add(V a, V b) { return _mm512_add_ps(a, b); }
  static FB_INL V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static FB_INL V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static FB_INL float hsum(V a) { return _mm512_reduce_add_ps(a); }
  static FB_INL Lut lut(const float* t16) { return Lut{_mm512_loadu_ps(t16)}; }
  // Per-group LUT ((lut - z) * s) * g for all 16 codes in one register (same ops as the scalar contract).
  static FB_INL Lut lut_apply(const Lut& b, float z, float s, float g, bool hz, bool hg) {
    __m512 t = hz ? _mm512_sub_ps(b.t, _mm512_set1_ps(z)) : b.t;
    t = _mm512_mul_ps(t, _mm512_set1_ps(s));
    return Lut{hg ? _mm512_mul_ps(t, _mm512_set1_ps(g)) : t};
  }
  // f32 -> fp16 RNE (vcvtps2ph is IEEE RNE incl. subnormals).
  static FB_INL void store_f16(uint16_t* p, V v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // f32 -> bf16 RNE with integer ops (vcvtneps2bf16 would flush subnormals); NaN -> quiet NaN.
  static FB_INL void store_bf16(uint16_t* p, V v) {
    __m512i u = _mm512_castps_si512(v);
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)),
                                                   _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
  }
  // 16 codes from 8 bytes at element offset k (even): duplicate each byte, widen, shift odd lanes by 4; vpermps
  // only reads the low 4 index bits, so no mask is needed.
  static FB_INL V dec4(const uint8_t* row, int64_t k, const Lut& l) {
    __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + k / 2));
    __m512i i = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));
    i = _mm512_srlv_epi32(i, _mm512_set_epi32(4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0));
    return _mm512_permutexvar_ps(i, l.t);
  }
  static FB_INL V dec_s8(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static FB_INL V dec_u8(const uint8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
};
#elif defined(FOURBIT_SIMD_AVX2)
struct Simd {
  static constexpr int W = 8;
  using V = __m256;
  struct Lut { __m256 lo, hi; };
  static FB_INL V zero() { return _mm256_setzero_ps(); }
  static FB_INL V set1(float a) { return _mm256_set1_ps(a); }
  static FB_INL V load(const float* p) { return _mm256_loadu_ps(p); }
  static FB_INL void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static FB_INL V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static FB_INL V add(V a, V b) { return _mm256_add_ps(a, b); }
  static FB_INL V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static FB_INL V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static FB_INL float hsum(V a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static FB_INL Lut lut(const float* t16) { return Lut{_mm256_loadu_ps(t16), _mm256_loadu_ps(t16 + 8)}; }
  // Per-group LUT ((lut - z) * s) * g in two registers.
  static FB_INL Lut lut_apply(const Lut& b, float z, float s, float g, bool hz, bool hg) {
    __m256 lo = b.lo, hi = b.hi, vs = _mm256_set1_ps(s);
    if (hz) { __m256 vz = _mm256_set1_ps(z); lo = _mm256_sub_ps(lo, vz); hi = _mm256_sub_ps(hi, vz); }
    lo = _mm256_mul_ps(lo, vs); hi = _mm256_mul_ps(hi, vs);
    if (hg) { __m256 vg = _mm256_set1_ps(g); lo = _mm256_mul_ps(lo, vg); hi = _mm256_mul_ps(hi, vg); }
    return Lut{lo, hi};
  }
  // f32 -> fp16 RNE (F16C).
  static FB_INL void store_f16(uint16_t* p, V v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // f32 -> bf16 RNE with integer ops; NaN -> quiet NaN.
  static FB_INL void store_bf16(uint16_t* p, V v) {
    __m256i u = _mm256_castps_si256(v);
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)),
                                                   _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1))), 16);
    __m256i nanr = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    r = _mm256_blendv_epi8(r, nanr, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
  }
  // 8 codes from 4 bytes: two 8-entry permutes (low 3 index bits) blended on bit 3 of the code.
  static FB_INL V dec4(const uint8_t* row, int64_t k, const Lut& l) {
    int32_t w; std::memcpy(&w, row + k / 2, 4);
    __m128i b = _mm_cvtsi32_si128(w);
    __m256i i = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));
    i = _mm256_srlv_epi32(i, _mm256_set_epi32(4, 0, 4, 0, 4, 0, 4, 0));
    __m256 lo = _mm256_permutevar8x32_ps(l.lo, i), hi = _mm256_permutevar8x32_ps(l.hi, i);
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(i, 28)));
  }
  static FB_INL V dec_s8(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static FB_INL V dec_u8(const uint8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
};
#else
struct Simd {
  static constexpr int W = 1;
  using V = float;
  struct Lut { float t[16]; };
  static FB_INL V zero() { return 0.0f; }
  static FB_INL V set1(float a) { return a; }
  static FB_INL V load(const float* p) { return *p; }
  static FB_INL void store(float* p, V v) { *p = v; }
  static FB_INL V fma(V a, V b, V c) { return a * b + c; }  // no FMA guaranteed on the baseline ISA
  static FB_INL V add(V a, V b) { return a + b; }
  static FB_INL V sub(V a, V b) { return a - b; }
  static FB_INL V mul(V a, V b) { return a * b; }
  static FB_INL float hsum(V a) { return a; }
  static FB_INL Lut lut(const float* t16) { Lut l; std::memcpy(l.t, t16, 64); return l; }
  static FB_INL Lut lut_apply(const Lut& b, float z, float s, float g, bool hz, bool hg) {
    Lut l;
    for (int c = 0; c < 16; ++c) { float t = hz ? b.t[c] - z : b.t[c]; t = t * s; l.t[c] = hg ? t * g : t; }
    return l;
  }
  static FB_INL void store_f16(uint16_t* p, V v) { *p = fourbit::f32_to_f16(v); }
  static FB_INL void store_bf16(uint16_t* p, V v) { *p = fourbit::f32_to_bf16(v); }
  static FB_INL V dec4(const uint8_t* row, int64_t k, const Lut& l) { return l.t[(row[k / 2] >> (4 * (k & 1))) & 15]; }
  static FB_INL V dec_s8(const int8_t* p) { return float(*p); }
  static FB_INL V dec_u8(const uint8_t* p) { return float(*p); }
};
#endif
