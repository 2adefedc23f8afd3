// 4-bit weight quantize on CUDA for bf16 / fp16 weights: int4 (asym / sym), nf4 (codebooks with a bucket table)
// and mxfp4 (floor / rceil), bit-exact with the FP32 references (fourbit.formats) and with the Triton kernel
// (kernels/quantize.py), whose operation order this follows step for step. Triton keeps every other case: float32
// weights, int8, nvfp4 (its global amax pass), bnb_fp4 (no bucket table), group sizes that are not a power of two
// in [16, 512], misaligned weights.
//   - The weight is read as a flat stream of 16-element chunks (32 bytes, two 16-byte loads a thread). G divides K
//     and is a power of two >= 16, so a chunk lies in one group, group f of the flat stream is scales[f] of the
//     [N, K/G] array read flat, and a group's T = G / 16 chunks sit in T adjacent lanes of one warp, which reduce its
//     max / min by shuffles.
//   - Maxima on the 16-bit patterns (two elements a word, DPX __vimax3_*16x2): as signed integers the largest
//     positive float wins, as unsigned the most negative; |x| as unsigned after clearing the sign bits. A pattern at
//     or above Inf's (0x7F80 bf16, 0x7C00 fp16) flags a NaN / Inf group: it gets the format's NaN scale and the code
//     of 0 (as the references do).
//   - Each thread writes its chunk's 16 codes as one 8-byte store (element 2i in the low nibble of byte i), and the
//     group's first lane its scale (and zero point).
// Measured: see quantize_plan's comment.
#include <stdexcept>

#include "api.h"
#include "common.cuh"

namespace fourbit_cuda {
namespace {

constexpr int kQThreads = 256;
// Format ids: kernels/codecs.py's (INT_SYM, INT_ASYM, CODEBOOK, -, MX_FLOOR, MX_RCEIL).
enum QFmt : int { QF_INT_SYM = 0, QF_INT_ASYM = 1, QF_CODEBOOK = 2, QF_MX_FLOOR = 4, QF_MX_RCEIL = 5 };

struct QuantParams {
  const uint4* w;            // [chunks * 2] 16-byte pieces of the weight
  uint2* q;                  // [chunks] 8 bytes of codes a chunk
  void* scales;              // [groups] float32 (int, codebook) or E8M0 bytes (mxfp4)
  uint8_t* zeros;            // [groups] (int asym)
  const uint2* table;        // codebook: [nb] entries (low word: codes, high word: the threshold's float bits)
  int64_t chunks;
  int lt;                    // log2(T), T = G / 16 lanes a group
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
__device__ __forceinline__ void int_scale(float d, bool bad, float qmax, float& s, float& y, bool& slow) {
  slow = !bad && d != 0.f && !(d >= 1.2924697071141057e-26f && d <= 7.737125245533627e+25f);
  s = slow ? __fdiv_rn(d, qmax) : steps(d, qmax, __frcp_rn(qmax));
  s = bad ? __int_as_float(0x7fc00000) : (s == 0.f ? 1.f : s);
  y = __frcp_rn(s);
}
// fp4_e2m1 code of a finite float by bit arithmetic (kernels/codecs.py e2m1_encode): RNE on the code, saturating.
__device__ __forceinline__ uint32_t e2m1_bits(float v) {
  const float a = fminf(fabsf(v), 6.f);
  const int sub = __float_as_int(__fadd_rn(__fmul_rn(a, 2.f), 8388608.f)) - 0x4B000000;  // RNE(2a) below 2
  const int b = __float_as_int(a);
  const int nrm = (b + (0x1FFFFF - (252 << 22)) + ((b >> 22) & 1)) >> 22;  // 1 mantissa bit, RNE, from 2 up
  return uint32_t(a < 2.f ? sub : nrm) | ((__float_as_uint(v) >> 28) & 8u);
}
// floor(log2 x) of a positive finite float (subnormals too) and whether x is a power of two.
__device__ __forceinline__ int log2_floor(float x, bool& pow2) {
  const uint32_t b = __float_as_uint(x);
  if (b < 0x800000u) { pow2 = (b & (b - 1u)) == 0u; return -118 - __clz(int(b)); }  // -149 + (31 - clz)
  pow2 = (b & 0x7FFFFFu) == 0u;
  return int(b >> 23) - 127;
}
// 16-bit pattern -> float32 (exact).
template <typename XT> __device__ __forceinline__ float h2f(uint32_t h);
template <> __device__ __forceinline__ float h2f<__nv_bfloat16>(uint32_t h) { return __uint_as_float(h << 16); }
template <> __device__ __forceinline__ float h2f<__half>(uint32_t h) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
}
// The 16 elements of a chunk as float32 (element 2i in word i's low half).
template <typename XT> __device__ __forceinline__ void to_f32x16(const uint32_t (&u)[8], float (&x)[16]) {
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    x[2 * i] = h2f<XT>(u[i] & 0xFFFFu);
    x[2 * i + 1] = h2f<XT>(u[i] >> 16);
  }
}
template <bool SIGNED> __device__ __forceinline__ uint32_t vmax3(uint32_t a, uint32_t b, uint32_t c) {
  if (SIGNED) return uint32_t(__vimax3_s16x2(int(a), int(b), int(c)));
  return __vimax3_u16x2(a, b, c);
}
// Max of the 16 16-bit patterns (as int16 when SIGNED, else uint16) over the group's T lanes, as a 16-bit value
// (sign-extended when SIGNED).
template <bool SIGNED> __device__ __forceinline__ int group_max16(const uint32_t (&u)[8], int T) {
  uint32_t m = vmax3<SIGNED>(u[0], u[1], u[2]);
  m = vmax3<SIGNED>(m, u[3], u[4]);
  m = vmax3<SIGNED>(m, u[5], u[6]);
  m = vmax3<SIGNED>(m, u[7], u[7]);
  int r = SIGNED ? max(int(int16_t(m & 0xFFFFu)), int(int16_t(m >> 16))) : int(max(m & 0xFFFFu, m >> 16));
  for (int o = 1; o < T; o <<= 1) r = max(r, __shfl_xor_sync(0xffffffffu, r, o));
  return r;
}

template <typename XT, int FMT>
__device__ __forceinline__ void quant_chunk(const QuantParams& p, const uint32_t (&u)[8], int64_t c, bool ok,
                                            const uint2* tbl) {
  constexpr uint32_t kInf = std::is_same<XT, __half>::value ? 0x7C00u : 0x7F80u;
  const int T = 1 << p.lt;
  const int64_t g = c >> p.lt;
  const bool lead = ok && (threadIdx.x & (T - 1)) == 0;
  float x[16];
  uint32_t code[16];
  if (FMT == QF_INT_ASYM) {
    const int smax = group_max16<true>(u, T), umax = group_max16<false>(u, T);
    const bool bad = smax >= int(kInf) || umax >= int(0x8000u | kInf);
    const float mx = smax > 0 ? h2f<XT>(uint32_t(smax)) : 0.f, mn = umax >= 0x8000 ? h2f<XT>(uint32_t(umax)) : 0.f;
    float s, y;
    bool slow;
    int_scale(__fsub_rn(mx, mn), bad, 15.f, s, y, slow);
    int z = __float2int_rn(qdiv(-mn, s, y, slow));
    z = bad ? 0 : min(max(z, 0), 15);
    to_f32x16<XT>(u, x);
#pragma unroll
    for (int i = 0; i < 16; ++i) code[i] = uint32_t(min(max(__float2int_rn(qdiv(x[i], s, y, slow)) + z, 0), 15));
    if (lead) { static_cast<float*>(p.scales)[g] = s; p.zeros[g] = uint8_t(z); }
  } else {
    uint32_t a[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) a[i] = u[i] & 0x7FFF7FFFu;
    const uint32_t m16 = uint32_t(group_max16<false>(a, T));
    const bool bad = m16 >= kInf;
    const float amax = h2f<XT>(m16);
    to_f32x16<XT>(u, x);
    if (FMT == QF_INT_SYM) {
      float s, y;
      bool slow;
      int_scale(amax, bad, 7.f, s, y, slow);
#pragma unroll
      for (int i = 0; i < 16; ++i) code[i] = uint32_t(min(max(__float2int_rn(qdiv(x[i], s, y, slow)), -8), 7) + 8);
      if (lead) static_cast<float*>(p.scales)[g] = s;
    } else if (FMT == QF_CODEBOOK) {
      // t = clamp(x * RN(1 / max(amax, 1e-38)), -1, 1); its bucket's entry gives the code on either side of the
      // bucket's only midpoint (kernels/quantize.py _bucket_table)
      const float inv = __frcp_rn(fmaxf(amax, __int_as_float(0x006CE3EE))), h = float(p.nb >> 1);
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        const float t = fminf(fmaxf(__fmul_rn(x[i], inv), -1.f), 1.f);
        const int b = min(max(__float2int_rz(__fadd_rn(__fmul_rn(t, h), h)), 0), p.nb - 1);
        const uint2 e = tbl[b];
        code[i] = bad ? uint32_t(p.zero_code) : (t > __uint_as_float(e.y) ? (e.x >> 4) & 15u : e.x & 15u);
      }
      if (lead) static_cast<float*>(p.scales)[g] = bad ? __int_as_float(0x7fc00000) : amax;
    } else {  // mxfp4: E8M0 exponent e, code = E2M1(x * 2^-e), an exact scaling
      int e = -127;
      bool pow2;
      if (FMT == QF_MX_FLOOR) {
        if (amax > 0.f) e = log2_floor(amax, pow2) - 2;
      } else {
        const float t = __fdiv_rn(amax, 6.f);
        if (t > 0.f) { const int fl = log2_floor(t, pow2); e = pow2 ? fl : fl + 1; }
      }
      e = min(max(e, -127), 127);
      const float sc = __int_as_float(-e >= -126 ? (127 - e) << 23 : 0x400000);  // 2^-e
#pragma unroll
      for (int i = 0; i < 16; ++i) code[i] = bad ? 0u : e2m1_bits(__fmul_rn(x[i], sc));
      if (lead) static_cast<uint8_t*>(p.scales)[g] = uint8_t(bad ? 255 : e + 127);
    }
  }
  if (!ok) return;
  uint2 o = make_uint2(0u, 0u);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    o.x |= code[i] << (4 * i);
    o.y |= code[8 + i] << (4 * i);
  }
  p.q[c] = o;
}

// One block: U rounds of 256 chunks (all loads first); codebook tables in shared memory.
template <typename XT, int FMT, int U>
__global__ void __launch_bounds__(kQThreads) quant_nib4_kernel(const QuantParams p) {
  __shared__ uint2 tbl[FMT == QF_CODEBOOK ? 128 : 1];
  if (FMT == QF_CODEBOOK) {
    for (int i = threadIdx.x; i < p.nb; i += kQThreads) tbl[i] = p.table[i];
  }
  const int64_t c0 = (int64_t)blockIdx.x * (kQThreads * U) + threadIdx.x;
  uint32_t u[U][8];
#pragma unroll
  for (int r = 0; r < U; ++r) {
    const int64_t c = c0 + r * kQThreads;
    uint4 a = make_uint4(0u, 0u, 0u, 0u), b = a;
    if (c < p.chunks) { a = __ldg(p.w + 2 * c); b = __ldg(p.w + 2 * c + 1); }
    u[r][0] = a.x; u[r][1] = a.y; u[r][2] = a.z; u[r][3] = a.w;
    u[r][4] = b.x; u[r][5] = b.y; u[r][6] = b.z; u[r][7] = b.w;
  }
  if (FMT == QF_CODEBOOK) __syncthreads();
#pragma unroll
  for (int r = 0; r < U; ++r) {
    const int64_t c = c0 + r * kQThreads;
    quant_chunk<XT, FMT>(p, u[r], c, c < p.chunks, tbl);
  }
}

template <typename XT, int FMT> void launch_q(const QuantParams& p, int U, cudaStream_t st) {
  const int64_t per = int64_t(kQThreads) * U;
  const unsigned blocks = unsigned((p.chunks + per - 1) / per);
  if (U == 1) quant_nib4_kernel<XT, FMT, 1><<<blocks, kQThreads, 0, st>>>(p);
  else if (U == 2) quant_nib4_kernel<XT, FMT, 2><<<blocks, kQThreads, 0, st>>>(p);
  else quant_nib4_kernel<XT, FMT, 4><<<blocks, kQThreads, 0, st>>>(p);
  check_launch("fourbit quantize");
}

template <typename XT> void launch_q_fmt(const QuantParams& p, int fmt, int U, cudaStream_t st) {
  switch (fmt) {
    case QF_INT_SYM: return launch_q<XT, QF_INT_SYM>(p, U, st);
    case QF_INT_ASYM: return launch_q<XT, QF_INT_ASYM>(p, U, st);
    case QF_CODEBOOK: return launch_q<XT, QF_CODEBOOK>(p, U, st);
    case QF_MX_FLOOR: return launch_q<XT, QF_MX_FLOOR>(p, U, st);
    default: return launch_q<XT, QF_MX_RCEIL>(p, U, st);
  }
}

int log2_of(int64_t G) {  // log2(G) for a power of two, else -1
  if (G <= 0 || (G & (G - 1))) return -1;
  int s = 0;
  while ((int64_t(1) << s) < G) ++s;
  return s;
}

}  // namespace

bool quantize_takes(const QuantArgs& a) {
  const int lg = log2_of(a.G);
  const bool fmt_ok = a.fmt == QF_INT_SYM || a.fmt == QF_INT_ASYM || a.fmt == QF_MX_FLOOR || a.fmt == QF_MX_RCEIL ||
                      (a.fmt == QF_CODEBOOK && a.nb > 0 && a.nb <= 128 && a.table != nullptr);
  const uintptr_t w = reinterpret_cast<uintptr_t>(a.w), q = reinterpret_cast<uintptr_t>(a.q);
  return fmt_ok && (a.xt == XT_BF16 || a.xt == XT_F16) && a.N > 0 && a.K > 0 && lg >= 4 && lg <= 9 &&
         a.K % a.G == 0 && (w & 15u) == 0 && (q & 7u) == 0 && (a.fmt >= QF_MX_FLOOR || (reinterpret_cast<uintptr_t>(a.scales) & 3u) == 0) &&
         (a.fmt != QF_INT_ASYM || a.zeros != nullptr) && a.q != nullptr && a.scales != nullptr;
}

void quantize(const QuantArgs& a, uintptr_t stream) {
  if (!quantize_takes(a))
    throw std::invalid_argument("cuda_quantize: needs a bf16 / fp16 [N, K] weight (16-byte aligned), int4 / nf4 "
                                "(bucket table) / mxfp4, a power-of-two group size in [16, 512] dividing K, and "
                                "aligned outputs");
  QuantParams p{reinterpret_cast<const uint4*>(a.w), reinterpret_cast<uint2*>(a.q), a.scales, a.zeros,
                reinterpret_cast<const uint2*>(a.table), a.N * a.K / 16, log2_of(a.G) - 4, a.nb, a.zero_code};
  // chunks a thread: all its loads are in flight before the first group's work (FOURBIT_QUANT_U: 1, 2 or 4)
  static const int e = env_choice("FOURBIT_QUANT_U", {1, 2, 4}), U = e ? e : 2;
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  if (a.xt == XT_BF16) launch_q_fmt<__nv_bfloat16>(p, a.fmt, U, st);
  else launch_q_fmt<__half>(p, a.fmt, U, st);
}

}  // namespace fourbit_cuda
