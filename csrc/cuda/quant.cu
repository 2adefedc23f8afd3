// 4-bit weight quantize on CUDA for bf16 / fp16 weights: int4 (asym / sym), nf4 (codebooks with a bucket table),
// nvfp4 (its global-amax pass, then its block pass) and mxfp4 (floor / rceil), bit-exact with the FP32
// references (fourbit.formats) and with the Triton kernel (kernels/quantize.py), whose operation order this follows
// step for step. Triton keeps every other case: float32 weights, int8, bnb_fp4 (no bucket table), group sizes that
// are not a power of two in [16, 512], misaligned weights.
//   - The weight is read as a flat stream of E-element chunks (E = 32, or 16 for codebooks and G = 16: 64 / 32 bytes
//     in 16-byte loads). G divides K and is a power of two >= E, so a chunk lies in one group, group f of the flat
//     stream is scales[f] of the [N, K/G] array read flat, and a group's T = G / E chunks sit in T adjacent lanes of
//     one warp, which reduce its max / min by shuffles. A thread takes U = 2 chunks, 256 chunks apart, all loads
//     first.
//   - Maxima on the 16-bit patterns (two elements a word, DPX __vimax3_*16x2): as signed integers the largest
//     positive float wins, as unsigned the most negative; |x| as unsigned after clearing the sign bits. A pattern at
//     or above Inf's (0x7F80 bf16, 0x7C00 fp16) flags a NaN / Inf group: it gets the format's NaN scale and the code
//     of 0 (as the references do).
//   - Each thread writes its chunk's E codes as one store (element 2i in the low nibble of byte i), and the group's
//     first lane its scale (and zero point).
// Measured (H200, 2026-11-28, bench/probes/quant_cuda.py, one-call CUDA graphs, us, % of the 4.14 TB/s copy for the
// weight read + codes, scales and zeros written; outputs bit-identical to Triton's):
//   - The first version (E = 16, per-element selects for the NaN / slow cases, cvt.rni) was issue-bound (ncu: 76-80%
//     of cycles issuing, 18.7 SASS instructions an element for int4): 8192^2 bf16 int4 / int4_sym / nf4 / mxfp4
//     67.2 / 59.3 / 68.0 / 65.8 against Triton's 75.2 / 71.9 / 78.2 / 74.1.
//   - One branch a chunk for those cases, codes by the magic number: 56.2 / 53.2 / 63.0 / 60.0.
//   - E = 32 (half the per-group work an element): 51.2 / 50.7 / 70.7 / 56.5 (U = 2), 51.9 / 50.8 / 69.2 / 58.8
//     (U = 1); nf4 was faster at E = 16 (63.4). E = 16 throughout, U = 1: 57.3 / 55.4 / 65.1 / 62.2.
//   - nf4's bucket by the magic number on the unclamped t (no clamps, no F2I): 63.4 -> 57.7 at E = 16 (65.4 at 32).
//   - This kernel, Triton -> CUDA: 8192^2 bf16 75.3 / 72.0 / 78.4 / 74.1 -> 51.6 / 50.7 / 57.7 / 56.1 us (55 / 57 /
//     53 / 55% -> 80 / 81 / 72 / 73% of copy), fp16 73.1 / 70.1 / 75.8 / 71.5 -> 50.2 / 49.1 / 57.4 / 58.9; 28672x8192
//     bf16 243.6 / 231.6 / 253.5 / 238.9 -> 156.3 / 154.7 / 179.2 / 176.1 (79-97%); 4096^2 bf16 23.7 / 23.0 / 25.2
//     / 23.6 -> 19.0 / 18.7 / 20.7 / 20.0 (48-56%: a short kernel's start and end).
//   - nvfp4 (the block pass here, after Triton's amax pass; same day, 16:24 UTC): 8192^2 bf16 110.6 -> 104.1 us (38 ->
//     40% of copy, the byte count of one read). Then the amax pass here too (17:18-17:29 UTC, two-H200 machine;
//     bench/probes/quant_kernels.py, torch.profiler, L2 flushed): amax kernel 37.0 -> 35.5 us (3.8 TB/s), block pass
//     62.4 us (int4's single pass 48.8); the op 103.1 us from a graph (41%), 103.9 eager (was 207.8: Triton's launch).
#include <algorithm>
#include <stdexcept>

#include "api.h"
#include "common.cuh"

namespace fourbit_cuda {
namespace {

constexpr int kQThreads = 256;
// Format ids: kernels/codecs.py's (INT_SYM, INT_ASYM, CODEBOOK, -, MX_FLOOR, MX_RCEIL).
enum QFmt : int { QF_INT_SYM = 0, QF_INT_ASYM = 1, QF_CODEBOOK = 2, QF_NVFP4 = 3, QF_MX_FLOOR = 4, QF_MX_RCEIL = 5 };

struct QuantParams {
  const uint4* w;            // [chunks * E / 8] 16-byte pieces of the weight
  uint8_t* q;                // [chunks * E / 2] codes
  void* scales;              // [groups] float32 (int, codebook) or E8M0 bytes (mxfp4)
  uint8_t* zeros;            // [groups] (int asym)
  const uint2* table;        // codebook: [nb] entries (low word: codes, high word: the threshold's float bits)
  float* amax;               // nvfp4: [1] max |w| over the finite weights (the first pass writes it)
  float* gscale;             // nvfp4: [1] out, the global scale
  int64_t chunks;
  int lt;                    // log2(T), T = G / E lanes a group
  int nb, zero_code;
};

// RN(x / s) for y = RN(1 / s), s in [2^-90, 2^90], |x / s| >= 2^-8 (kernels/quantize.py _steps: Markstein's
// correction twice; smaller quotients may differ, and every caller rounds those to 0 alike).
__device__ __forceinline__ float steps(float x, float s, float y) {
  float q = __fmul_rn(x, y);
  q = __fmaf_rn(__fmaf_rn(-q, s, x), y, q);
  return __fmaf_rn(__fmaf_rn(-q, s, x), y, q);
}
__device__ __forceinline__ float qdiv(float x, float s, float y, bool slow) {
  return slow ? __fdiv_rn(x, s) : steps(x, s, y);
}
// The integer formats' scale of range d (kernels/quantize.py _int_scale): s = RN(d / qmax) (1 for 0, NaN for a
// NaN / Inf group), y = RN(1 / s), slow: d outside [2^-86, 2^86] (then the quotients take the IEEE division).
// rq = RN(1 / qmax) (as a literal: a constant __frcp_rn is not folded).
__device__ __forceinline__ void int_scale(float d, bool bad, float qmax, float rq, float& s, float& y, bool& slow) {
  slow = !bad && d != 0.f && !(d >= 1.2924697071141057e-26f && d <= 7.737125245533627e+25f);
  s = slow ? __fdiv_rn(d, qmax) : steps(d, qmax, rq);
  s = bad ? __int_as_float(0x7fc00000) : (s == 0.f ? 1.f : s);
  y = __frcp_rn(s);
}
// The 7 E2M1 decision bounds t (kernels/codecs.py E2M1_T: |q| > t, resp. >= t, exactly where RN(q) passes 0.25 /
// 0.75 / 1.25 / 1.75 / 2.5 / 3.5 / 5 with ties to the even code): |x| / d passes bound k exactly where |x| exceeds
// RZ(d * t_k) (d * t_k exact in float64, never a float32 for d > 0; kernels/codecs.py _bound_bits).
__device__ __forceinline__ float e2m1_bound(float d, double t) {
  return __double2float_rz(double(d) * t);
}
// A bound on a float32 |x| as one on a 16-bit |x| in both 16-bit lanes, bit 15 set (kernels/codecs.py _lanes).
template <typename XT> __device__ __forceinline__ uint32_t bound_lanes(float z);
template <> __device__ __forceinline__ uint32_t bound_lanes<__nv_bfloat16>(float z) {
  return ((__float_as_uint(z) >> 16) * 0x10001u) | 0x80008000u;  // |x|'s low 16 float32 bits are 0
}
template <> __device__ __forceinline__ uint32_t bound_lanes<__half>(float z) {
  return (uint32_t(__half_as_ushort(__float2half_rz(z))) * 0x10001u) | 0x80008000u;  // the largest fp16 <= z
}
// 0xFFFF in each 16-bit lane where a <= z (zl: bound_lanes(z), a: two magnitudes < 0x8000): bit 15 of (z | 0x8000)
// - a, no borrow across lanes, replicated over its lane by one prmt.
__device__ __forceinline__ uint32_t lanes_le(uint32_t zl, uint32_t a) {
  uint32_t r;
  asm("prmt.b32 %0, %1, 0, 0xBB99;" : "=r"(r) : "r"(zl - a));
  return r;
}
// 16-bit pattern -> float32 (exact).
template <typename XT> __device__ __forceinline__ float h2f(uint32_t h);
template <> __device__ __forceinline__ float h2f<__nv_bfloat16>(uint32_t h) { return __uint_as_float(h << 16); }
template <> __device__ __forceinline__ float h2f<__half>(uint32_t h) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
}
// The E elements of a chunk as float32 (element 2i in word i's low half).
template <typename XT, int E> __device__ __forceinline__ void to_f32(const uint32_t (&u)[E / 2], float (&x)[E]) {
#pragma unroll
  for (int i = 0; i < E / 2; ++i) {
    x[2 * i] = h2f<XT>(u[i] & 0xFFFFu);
    x[2 * i + 1] = h2f<XT>(u[i] >> 16);
  }
}
template <bool SIGNED> __device__ __forceinline__ uint32_t vmax3(uint32_t a, uint32_t b, uint32_t c) {
  if (SIGNED) return uint32_t(__vimax3_s16x2(int(a), int(b), int(c)));
  return __vimax3_u16x2(a, b, c);
}
// Max of the E 16-bit patterns (as int16 when SIGNED, else uint16) over the group's T lanes, as a 16-bit value
// (sign-extended when SIGNED).
template <bool SIGNED, int W> __device__ __forceinline__ int group_max16(const uint32_t (&u)[W], int T) {
  uint32_t m = vmax3<SIGNED>(u[0], u[1], u[2]);
#pragma unroll
  for (int i = 3; i < W; i += 2) m = vmax3<SIGNED>(m, u[i], u[i + 1 < W ? i + 1 : i]);
  int r = SIGNED ? max(int(int16_t(m & 0xFFFFu)), int(int16_t(m >> 16))) : int(max(m & 0xFFFFu, m >> 16));
  for (int o = 1; o < T; o <<= 1) r = max(r, __shfl_xor_sync(0xffffffffu, r, o));
  return r;
}

// One chunk's codes (and, from the group's first lane, its scale and zero point). Each format has one straight-line
// path for finite groups in range and a general one for NaN / Inf groups (and the integer formats' ranges outside
// [2^-86, 2^86]), chosen once a chunk, so the common path carries no per-element selects or branches.
// Integer codes by the 1.5 * 2^23 magic number: for |v| < 2^22, v + 1.5 * 2^23 holds RNE(v) in its low bits.
template <typename XT, int FMT, int E>
__device__ __forceinline__ void quant_chunk(const QuantParams& p, const uint32_t (&u)[E / 2], int64_t c, bool ok,
                                            const uint2* tbl) {
  constexpr uint32_t kInf = std::is_same<XT, __half>::value ? 0x7C00u : 0x7F80u;
  const int T = 1 << p.lt;
  const int64_t g = c >> p.lt;
  const bool lead = ok && (threadIdx.x & (T - 1)) == 0;
  float x[E];
  uint32_t code[E];
  if (FMT == QF_INT_ASYM) {
    const int smax = group_max16<true, E / 2>(u, T), umax = group_max16<false, E / 2>(u, T);
    const bool bad = smax >= int(kInf) || umax >= int(0x8000u | kInf);
    const float mx = smax > 0 ? h2f<XT>(uint32_t(smax)) : 0.f, mn = umax >= 0x8000 ? h2f<XT>(uint32_t(umax)) : 0.f;
    float s, y;
    bool slow;
    int_scale(__fsub_rn(mx, mn), bad, 15.f, 0x1.111112p-4f, s, y, slow);
    int z = __float2int_rn(qdiv(-mn, s, y, slow));
    z = bad ? 0 : min(max(z, 0), 15);
    to_f32<XT, E>(u, x);
    if (bad || slow) {
#pragma unroll
      for (int i = 0; i < E; ++i)
        code[i] = bad ? 0u : uint32_t(min(max(__float2int_rn(__fdiv_rn(x[i], s)) + z, 0), 15));
    } else {
      // |x / s| <= 15 (1 + 2^-23) here, and RNE(x / s) >= RNE(mn / s) = -z, so only the top needs the clamp
      const int zb = z - 0x4B400000;
#pragma unroll
      for (int i = 0; i < E; ++i)
        code[i] = uint32_t(min(__float_as_int(__fadd_rn(steps(x[i], s, y), 12582912.f)) + zb, 15));
    }
    if (lead) { static_cast<float*>(p.scales)[g] = s; p.zeros[g] = uint8_t(z); }
  } else {
    uint32_t a[E / 2];
#pragma unroll
    for (int i = 0; i < E / 2; ++i) a[i] = u[i] & 0x7FFF7FFFu;
    const uint32_t m16 = uint32_t(group_max16<false, E / 2>(a, T));
    const bool bad = m16 >= kInf;
    const float amax = h2f<XT>(m16);
    to_f32<XT, E>(u, x);
    if (FMT == QF_INT_SYM) {
      float s, y;
      bool slow;
      int_scale(amax, bad, 7.f, 0x1.24924ap-3f, s, y, slow);
      if (bad || slow) {
#pragma unroll
        for (int i = 0; i < E; ++i)
          code[i] = bad ? 8u : uint32_t(min(max(__float2int_rn(__fdiv_rn(x[i], s)), -8), 7) + 8);
      } else {  // |x / s| <= 7 (1 + 2^-23): RNE(x / s) + 8 in [1, 15] is the low nibble of x / s + 1.5 * 2^23 + 8
#pragma unroll
        for (int i = 0; i < E; ++i) code[i] = __float_as_uint(__fadd_rn(steps(x[i], s, y), 12582920.f)) & 15u;
      }
      if (lead) static_cast<float*>(p.scales)[g] = s;
    } else if (FMT == QF_CODEBOOK) {
      // t = clamp(x * RN(1 / max(amax, 1e-38)), -1, 1); its bucket's entry gives the code on either side of the
      // bucket's only midpoint (kernels/quantize.py _bucket_table: slices widened by 2^-22). Here t is not clamped
      // (|x * inv| <= 1 + 2^-23, which compares with every midpoint as the clamped t does) and its bucket plus one is
      // RNE(t * h + h + 0.5) (h = nb / 2: one FMA, error <= 2^-23 in t), read off the 1.5 * 2^23 magic number in
      // [0, nb + 1]; the shared table holds entries -1 .. nb of the buckets (the end ones repeated), at tb + 8 k
      const float inv = __frcp_rn(fmaxf(amax, __int_as_float(0x006CE3EE))), h = float(p.nb >> 1);
      if (bad) {
#pragma unroll
        for (int i = 0; i < E; ++i) code[i] = uint32_t(p.zero_code);
      } else {
        const uint32_t tb = smem_u32(tbl) - (0x4B400000u << 3);  // (magic bits << 3) + tb wraps to the entry
#pragma unroll
        for (int i = 0; i < E; ++i) {
          const float t = __fmul_rn(x[i], inv);
          const uint32_t k = __float_as_uint(__fadd_rn(__fmaf_rn(t, h, h + 0.5f), 12582912.f));
          uint32_t lo, hi;
          asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];\n" : "=r"(lo), "=r"(hi) : "r"(tb + (k << 3)));
          code[i] = (lo >> (t > __uint_as_float(hi) ? 4 : 0)) & 15u;
        }
      }
      if (lead) static_cast<float*>(p.scales)[g] = bad ? __int_as_float(0x7fc00000) : amax;
    } else if (FMT == QF_NVFP4) {
      // g = amax / 2688 (1 if 0), s = E4M3(bmax / (6 g)) (1 if 0), code = E2M1(RN(x / RN(s g))) by a 3-step search
      // of |x| against the 7 bounds, two elements a word in 16-bit lanes (kernels/codecs.py e2m1_encode_pairs)
      float gs = __fdiv_rn(__ldg(p.amax), 2688.f);
      gs = gs == 0.f ? 1.f : gs;
      const uint32_t sb = nvfp4_scale_byte(amax, gs);
      const float d = __fmul_rn(e4m3_to_f32(sb), gs);
      const uint32_t l0 = bound_lanes<XT>(e2m1_bound(d, 0.25 + 0x1p-26));
      const uint32_t l1 = bound_lanes<XT>(e2m1_bound(d, 0.75 - 0x1p-25));
      const uint32_t l2 = bound_lanes<XT>(e2m1_bound(d, 1.25 + 0x1p-24));
      const uint32_t l3 = bound_lanes<XT>(e2m1_bound(d, 1.75 - 0x1p-24));
      const uint32_t l4 = bound_lanes<XT>(e2m1_bound(d, 2.5 + 0x1p-23));
      const uint32_t l5 = bound_lanes<XT>(e2m1_bound(d, 3.5 - 0x1p-23));
      const uint32_t l6 = bound_lanes<XT>(e2m1_bound(d, 5.0 + 0x1p-22));
#pragma unroll
      for (int i = 0; i < E / 2; ++i) {
        const uint32_t w = u[i], a2 = w & 0x7FFF7FFFu;
        const uint32_t n4 = lanes_le(l3, a2);  // not (magnitude >= 4)
        const uint32_t n2 = lanes_le(l5 ^ ((l5 ^ l1) & n4), a2);  // not (>= 6), resp. not (>= 2)
        const uint32_t n1 = lanes_le(l6 ^ (n4 & (l6 ^ l2)) ^ (n2 & ((l6 ^ l4) ^ (n4 & (l6 ^ l4 ^ l2 ^ l0)))), a2);
        const uint32_t cw = (((n4 & 0x40004u) | (n2 & 0x20002u) | (n1 & 0x10001u)) ^ 0x70007u) |
                            ((w >> 12) & 0x80008u);  // magnitude 7 - not-flags, sign from bit 15
        code[2 * i] = bad ? 0u : cw & 15u;
        code[2 * i + 1] = bad ? 0u : (cw >> 16) & 15u;
      }
      if (lead) static_cast<uint8_t*>(p.scales)[g] = uint8_t(bad ? 0x7Fu : sb);
      if (c == 0) *p.gscale = gs;
    } else {  // mxfp4: E8M0 exponent e, code = E2M1(x * 2^-e), an exact scaling
      const int e = mx_exponent(amax, FMT == QF_MX_RCEIL);
      const float sc = exp2_neg(e);
      if (bad) {
#pragma unroll
        for (int i = 0; i < E; ++i) code[i] = 0u;
      } else {
#pragma unroll
        for (int i = 0; i < E; ++i) code[i] = e2m1_encode_bits(__fmul_rn(x[i], sc));
      }
      if (lead) static_cast<uint8_t*>(p.scales)[g] = uint8_t(bad ? 255 : e + 127);
    }
  }
  if (!ok) return;
  uint32_t o[E / 8] = {};
#pragma unroll
  for (int i = 0; i < E; ++i) o[i / 8] |= code[i] << (4 * (i % 8));
  if constexpr (E == 16) *reinterpret_cast<uint2*>(p.q + c * 8) = make_uint2(o[0], o[1]);
  else *reinterpret_cast<uint4*>(p.q + c * 16) = make_uint4(o[0], o[1], o[2], o[3]);
}

// One block: U rounds of 256 chunks of E elements (all loads first); codebook tables in shared memory.
template <typename XT, int FMT, int E, int U>
__global__ void __launch_bounds__(kQThreads) quant_nib4_kernel(const QuantParams p) {
  __shared__ uint2 tbl[FMT == QF_CODEBOOK ? 130 : 1];  // codebook: bucket i - 1 at i, 0 .. nb + 1 (ends clamped)
  if (FMT == QF_CODEBOOK) {
    for (int i = threadIdx.x; i <= p.nb + 1; i += kQThreads) tbl[i] = p.table[min(max(i - 1, 0), p.nb - 1)];
  }
  // nvfp4 from the tensor's end, where the amax pass left its last reads in L2 (kernels/quantize.py KEEP_L2)
  const int64_t bx = FMT == QF_NVFP4 ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int64_t c0 = bx * (kQThreads * U) + threadIdx.x;
  uint32_t u[U][E / 2];
#pragma unroll
  for (int r = 0; r < U; ++r) {
    const int64_t c = c0 + r * kQThreads;
#pragma unroll
    for (int j = 0; j < E / 8; ++j) {
      const uint4 v = c < p.chunks ? __ldg(p.w + c * (E / 8) + j) : make_uint4(0u, 0u, 0u, 0u);
      u[r][4 * j] = v.x; u[r][4 * j + 1] = v.y; u[r][4 * j + 2] = v.z; u[r][4 * j + 3] = v.w;
    }
  }
  if (FMT == QF_CODEBOOK) __syncthreads();
#pragma unroll
  for (int r = 0; r < U; ++r) {
    const int64_t c = c0 + r * kQThreads;
    quant_chunk<XT, FMT, E>(p, u[r], c, c < p.chunks, tbl);
  }
}

// nvfp4's first pass: amax = max |w| over the finite elements (as kernels/quantize.py _amax16_kernel, whose result
// it equals: a max is exact in any order). Words of two 16-bit magnitudes; a lane at or above Inf's pattern counts as
// 0; one atomic max a block on the float's bits (non-negative: their integer order is the float order) into a zeroed
// amax. Persistent blocks walk the weight in order, kAmaxU 16-byte loads a thread in flight; the pieces from keep_from
// on (the last KEEP_L2 bytes) are loaded evict_last, the rest evict_first, so the block pass, which starts at the
// tensor's end, finds those in L2.
constexpr int kAmaxU = 4;
constexpr int64_t kKeepL2 = int64_t(16) << 20;  // kernels/quantize.py KEEP_L2 (measured there: 8-16 MB best)
// An L2 policy (createpolicy: evict_last or evict_first for all lines) and a 16-byte load under it.
template <bool LAST> __device__ __forceinline__ uint64_t l2_policy() {
  uint64_t pol;
  if (LAST) asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;\n" : "=l"(pol));
  else asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(pol));
  return pol;
}
__device__ __forceinline__ uint4 ld_policy(const uint4* p, uint64_t pol) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], %5;\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p), "l"(pol));
  return v;
}
// |w| of a word's two lanes, a lane at or above Inf's pattern (NaN / Inf) as 0.
template <typename XT> __device__ __forceinline__ uint32_t finite_mag2(uint32_t w) {
  constexpr uint32_t kInf = std::is_same<XT, __half>::value ? 0x7C00u : 0x7F80u;
  const uint32_t a = w & 0x7FFF7FFFu;
  return a & lanes_le(((kInf - 1u) * 0x10001u) | 0x80008000u, a);
}
template <typename XT>
__global__ void __launch_bounds__(kQThreads) amax16_kernel(const uint4* w, int64_t n, int64_t keep_from, float* amax) {
  const uint64_t keep = l2_policy<true>(), pass = l2_policy<false>();
  uint32_t m = 0;
  const int64_t step = int64_t(gridDim.x) * kQThreads * kAmaxU;
  for (int64_t i0 = int64_t(blockIdx.x) * kQThreads * kAmaxU + threadIdx.x; i0 < n; i0 += step) {
    uint4 v[kAmaxU];
#pragma unroll
    for (int u = 0; u < kAmaxU; ++u) {
      const int64_t i = i0 + u * kQThreads;
      v[u] = i < n ? ld_policy(w + i, i >= keep_from ? keep : pass) : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int u = 0; u < kAmaxU; ++u)
      m = __vimax3_u16x2(m, __vimax3_u16x2(finite_mag2<XT>(v[u].x), finite_mag2<XT>(v[u].y), finite_mag2<XT>(v[u].z)),
                         finite_mag2<XT>(v[u].w));
  }
  __shared__ uint32_t part[kQThreads / 32];
  m = __reduce_max_sync(0xffffffffu, max(m & 0xFFFFu, m >> 16));
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
#pragma unroll
    for (int k = 1; k < kQThreads / 32; ++k) m = max(m, part[k]);
    if (m) atomicMax(reinterpret_cast<int*>(amax), __float_as_int(h2f<XT>(m)));
  }
}

template <typename XT> void launch_amax(const QuantParams& p, cudaStream_t st) {
  const int64_t n = p.chunks * 2;  // 16-byte pieces (nvfp4's chunks are 16 elements, 32 bytes)
  const int64_t per = int64_t(kQThreads) * kAmaxU;
  const unsigned blocks = unsigned(std::min<int64_t>((n + per - 1) / per, int64_t(sm_count()) * 8));
  cudaMemsetAsync(p.amax, 0, sizeof(float), st);
  amax16_kernel<XT><<<blocks, kQThreads, 0, st>>>(p.w, n, std::max<int64_t>(0, n - kKeepL2 / 16), p.amax);
  check_launch("fourbit quantize (amax)");
}

template <typename XT, int FMT, int E> void launch_q(const QuantParams& p, int U, cudaStream_t st) {
  const int64_t per = int64_t(kQThreads) * U;
  const unsigned blocks = unsigned((p.chunks + per - 1) / per);
  if (U == 1) quant_nib4_kernel<XT, FMT, E, 1><<<blocks, kQThreads, 0, st>>>(p);
  else quant_nib4_kernel<XT, FMT, E, 2><<<blocks, kQThreads, 0, st>>>(p);
  check_launch("fourbit quantize");
}

template <typename XT, int FMT> void launch_q_e(const QuantParams& p, int E, int U, cudaStream_t st) {
  if (E == 16) launch_q<XT, FMT, 16>(p, U, st);
  else launch_q<XT, FMT, 32>(p, U, st);
}

template <typename XT> void launch_q_fmt(const QuantParams& p, int fmt, int E, int U, cudaStream_t st) {
  switch (fmt) {
    case QF_INT_SYM: return launch_q_e<XT, QF_INT_SYM>(p, E, U, st);
    case QF_INT_ASYM: return launch_q_e<XT, QF_INT_ASYM>(p, E, U, st);
    case QF_CODEBOOK: return launch_q_e<XT, QF_CODEBOOK>(p, E, U, st);
    case QF_NVFP4:  // G = 16; the amax pass first, into the caller's amax buffer
      launch_amax<XT>(p, st);
      return launch_q<XT, QF_NVFP4, 16>(p, U, st);
    case QF_MX_FLOOR: return launch_q_e<XT, QF_MX_FLOOR>(p, E, U, st);
    default: return launch_q_e<XT, QF_MX_RCEIL>(p, E, U, st);
  }
}

}  // namespace

bool quantize_takes(const QuantArgs& a) {
  const int lg = log2_exact(a.G);
  const bool fmt_ok = a.fmt == QF_INT_SYM || a.fmt == QF_INT_ASYM || a.fmt == QF_MX_FLOOR || a.fmt == QF_MX_RCEIL ||
                      (a.fmt == QF_CODEBOOK && a.nb > 0 && a.nb <= 128 && a.table != nullptr) ||
                      (a.fmt == QF_NVFP4 && a.G == 16 && a.amax != nullptr && a.gscale != nullptr);
  const uintptr_t w = reinterpret_cast<uintptr_t>(a.w), q = reinterpret_cast<uintptr_t>(a.q);
  const bool f32_scales_ok = a.fmt >= QF_NVFP4 || (reinterpret_cast<uintptr_t>(a.scales) & 3u) == 0;
  return fmt_ok && (a.xt == XT_BF16 || a.xt == XT_F16) && a.N > 0 && a.K > 0 && lg >= 4 && lg <= 9 &&
         a.K % a.G == 0 && (w & 15u) == 0 && (q & 15u) == 0 && f32_scales_ok &&
         (a.fmt != QF_INT_ASYM || a.zeros != nullptr) && a.q != nullptr && a.scales != nullptr;
}

void quantize(const QuantArgs& a, uintptr_t stream) {
  if (!quantize_takes(a))
    throw std::invalid_argument("cuda_quantize: needs a bf16 / fp16 [N, K] weight (16-byte aligned), int4 / nf4 "
                                "(bucket table) / nvfp4 (amax, global scale) / mxfp4, a power-of-two group size in "
                                "[16, 512] dividing K, and aligned outputs");
  // elements a chunk (FOURBIT_QUANT_E: 16 or 32, at most G) and chunks a thread (FOURBIT_QUANT_U: 1 or 2); all of a
  // thread's loads are in flight before its first group's work
  static const int e_env = env_choice("FOURBIT_QUANT_E", {16, 32}), u_env = env_choice("FOURBIT_QUANT_U", {1, 2});
  const int e_def = a.fmt == QF_CODEBOOK ? 16 : 32;  // measured: see the file's header (U: 2 by default)
  const int E = int(std::min<int64_t>(e_env ? e_env : e_def, a.G)), U = u_env ? u_env : 2;
  QuantParams p{reinterpret_cast<const uint4*>(a.w), a.q, a.scales, a.zeros, reinterpret_cast<const uint2*>(a.table),
                a.amax, a.gscale, a.N * a.K / E, log2_exact(a.G) - log2_exact(E), a.nb, a.zero_code};
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  if (a.xt == XT_BF16) launch_q_fmt<__nv_bfloat16>(p, a.fmt, E, U, st);
  else launch_q_fmt<__half>(p, a.fmt, E, U, st);
}

}  // namespace fourbit_cuda
