// W4A4: activations quantized on the fly to nvfp4 / mxfp4, times a weight in the same format.
//
// act_quantize: bit-exact with fourbit.formats.nvfp4 / mxfp4 quantize_ref (operation order written there):
//   nvfp4: g = amax_finite(x) / 2688 (1 if 0); s = E4M3(bmax / (6 * g)), 1 if 0; code = e2m1(x / (s * g));
//   mxfp4: e = floor(log2 bmax) - 2 ("floor") or ceil(log2(bmax / 6)) ("rceil"), clamped to [-127, 127];
//          code = e2m1(x * 2^-e); scale byte e + 127.
//   A block holding NaN/Inf gets the NaN scale (0x7F / 0xFF) and code 0.
// w4a4_linear: one shared fragment loader (codes straight from the canonical [rows, K/2] layout; 4 scales per row
//   per 64 columns as one 32-bit load from the 128x4 blocked scale layout) feeds either
//   - sm_120a / sm_121a: mma.sync m16n8k64 kind::mxf4nvf4.block_scale.scale_vec::4X (nvfp4, ue4m3) or
//     kind::mxf4.block_scale.scale_vec::2X (mxfp4, ue8m0); SASS OMMA.SF; or
//   - every other arch (tested on H100): the same fragments dequantized in registers to bf16 (e2m1 * scale is exact
//     in bf16) and four mma.sync m16n8k16 bf16 MMAs per 64 columns. The fragment's k set per lane is identical for
//     A and B, so the m16n8k16 k order does not matter.
//   Both accumulate in fp32; the two global scales multiply the sum.
#include <stdexcept>
#include <string>

#include "api.h"
#include "common.cuh"

#if defined(__CUDA_ARCH_FEAT_SM120_ALL) || defined(__CUDA_ARCH_FEAT_SM121_ALL)
#define FOURBIT_BLOCK_SCALED_MMA 1
#endif

namespace fourbit_cuda {
namespace {

template <typename XT>
__global__ void amax_kernel(const XT* x, int64_t n, uint32_t* amax_bits) {
  float m = 0.f;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float a = fabsf(to_f32(x[i]));
    if (a <= 3.402823466e38f) m = fmaxf(m, a);  // finite only (NaN and Inf fail the test)
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  if ((threadIdx.x & 31) == 0) atomicMax(amax_bits, __float_as_uint(m));  // non-negative floats order as uints
}

// One thread per block of B elements (16 for nvfp4, 32 for mxfp4).
template <typename XT>
__global__ void act_quant_kernel(const XT* x, int64_t M, int64_t K, int fmt, const uint32_t* amax_bits,
                                 float* gscale, uint8_t* q, uint8_t* scales, uint8_t* blocked) {
  const int B = fmt == 0 ? 16 : 32;
  const int64_t nb = K / B, idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  float g = 1.f;
  if (fmt == 0) {
    g = __fdiv_rn(__uint_as_float(*amax_bits), 2688.0f);
    if (g == 0.f) g = 1.f;
    if (idx == 0 && gscale) *gscale = g;
  }
  if (idx >= M * nb) return;
  const int64_t m = idx / nb, j = idx - m * nb;
  const XT* src = x + m * K + j * B;
  float v[32];
  float bmax = 0.f;
  bool bad = false;
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    if (i < B) {
      v[i] = to_f32(src[i]);
      const float a = fabsf(v[i]);
      if (!(a <= 3.402823466e38f)) bad = true; else bmax = fmaxf(bmax, a);
    }
  }
  // the block scale by the rules the weight quantizer uses (common.cuh: nvfp4_scale_byte, mx_exponent, exp2_neg)
  uint32_t sbyte;
  float mul = 0.f, div = 1.f;
  if (fmt == 0) {
    const uint32_t s = nvfp4_scale_byte(bmax, g);
    sbyte = bad ? 0x7fu : s;
    div = __fmul_rn(e4m3_to_f32(s), g);
  } else {
    const int e = mx_exponent(bmax, fmt == 2);
    sbyte = bad ? 255u : uint32_t(e + 127);
    mul = exp2_neg(e);
  }
  uint8_t* dst = q + m * (K / 2) + j * (B / 2);
  for (int i = 0; i < B; i += 2) {
    uint32_t c0 = 0, c1 = 0;
    if (!bad) {
      // nvfp4: a zero x keeps v = x where s * g underflowed to 0 (formats/nvfp4.py), not 0 / 0's NaN
      const float a0 = fmt == 0 ? (v[i] == 0.f ? v[i] : __fdiv_rn(v[i], div)) : __fmul_rn(v[i], mul);
      const float a1 = fmt == 0 ? (v[i + 1] == 0.f ? v[i + 1] : __fdiv_rn(v[i + 1], div)) : __fmul_rn(v[i + 1], mul);
      c0 = e2m1_encode(a0); c1 = e2m1_encode(a1);
    }
    dst[i / 2] = uint8_t(c0 | (c1 << 4));
  }
  if (scales) scales[m * nb + j] = uint8_t(sbyte);
  if (blocked) blocked[blocked_offset(m, j, nb)] = uint8_t(sbyte);
}

// ---- shared fragment loader ------------------------------------------------------------------------------------
// Per lane (g = lane / 4, t = lane % 4) for the 64 columns starting at kk:
//   a[0] = A row g, k = kk + 8t .. +7 (8 nibbles, element order = nibble order); a[1] = row g + 8; a[2], a[3] = the
//   same rows at k + 32. b[0] = W row (col) g, k = kk + 8t .. +7; b[1] = k + 32.
//   sfa = the 4 scale bytes (k blocks kk/16 .. +3 for nvfp4; the aligned 4 of k/32 for mxfp4) of A row g (even
//   lanes) or g + 8 (odd lanes); sfb = those of W row g. This is the m16n8k64 block-scaled MMA's register layout.
struct Frag { uint32_t a[4], b[2], sfa, sfb; };

template <bool NV>
__device__ __forceinline__ void load_frag(Frag& f, const uint8_t* A, const uint8_t* SA, int64_t M, const uint8_t* W,
                                          const uint8_t* SW, int64_t N, int64_t K, int64_t m0, int64_t n0,
                                          int64_t kk, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const int64_t ra0 = m0 + g, ra1 = m0 + g + 8, rb = n0 + g, kb = kk / 2 + 4 * t;
  auto ld = [&](const uint8_t* base, int64_t row, int64_t rows, int64_t off) -> uint32_t {
    return row < rows ? __ldg(reinterpret_cast<const uint32_t*>(base + row * (K / 2) + off)) : 0u;
  };
  f.a[0] = ld(A, ra0, M, kb); f.a[1] = ld(A, ra1, M, kb); f.a[2] = ld(A, ra0, M, kb + 16); f.a[3] = ld(A, ra1, M, kb + 16);
  f.b[0] = ld(W, rb, N, kb); f.b[1] = ld(W, rb, N, kb + 16);
  const int64_t cols = NV ? K / 16 : K / 32;
  const int64_t c = NV ? kk / 16 : (kk / 32) & ~int64_t(3);
  // Rows past M / N still lie inside the blocked buffers (rows padded to 128, zero filled).
  f.sfa = __ldg(reinterpret_cast<const uint32_t*>(SA + blocked_offset((lane & 1) ? ra1 : ra0, c, cols)));
  f.sfb = __ldg(reinterpret_cast<const uint32_t*>(SW + blocked_offset(rb, c, cols)));
}

#ifdef FOURBIT_BLOCK_SCALED_MMA
__device__ __forceinline__ void mma_block_scaled(float (&d)[4], const Frag& f, bool nv, uint32_t bsel) {
  if (nv) {
    asm volatile(
        "mma.sync.aligned.m16n8k64.row.col.kind::mxf4nvf4.block_scale.scale_vec::4X.f32.e2m1.e2m1.f32.ue4m3 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3}, %10, {%11,%12}, %13, {%14,%15};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(f.a[0]), "r"(f.a[1]), "r"(f.a[2]), "r"(f.a[3]), "r"(f.b[0]), "r"(f.b[1]), "r"(f.sfa),
          "h"((uint16_t)0), "h"((uint16_t)0), "r"(f.sfb), "h"((uint16_t)0), "h"((uint16_t)0));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k64.row.col.kind::mxf4.block_scale.scale_vec::2X.f32.e2m1.e2m1.f32.ue8m0 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3}, %10, {%11,%12}, %13, {%14,%15};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(f.a[0]), "r"(f.a[1]), "r"(f.a[2]), "r"(f.a[3]), "r"(f.b[0]), "r"(f.b[1]), "r"(f.sfa),
          "h"((uint16_t)bsel), "h"((uint16_t)0), "r"(f.sfb), "h"((uint16_t)bsel), "h"((uint16_t)0));
  }
}
#endif

// Hopper (and any-arch) fallback atom: dequantize the fragment to bf16 and run 4 m16n8k16 MMAs.
// Eight nibbles of reg times the scales of their two 16-blocks / one 32-block -> 4 bf16 pairs.
__device__ __forceinline__ void dequant8(uint32_t reg, float s_lo, float s_hi, uint32_t (&out)[4]) {
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const float s = p < 2 ? s_lo : s_hi;  // nibbles 0..3 / 4..7 of the 8-run
    const float v0 = __fmul_rn(e2m1_to_f32((reg >> (8 * p)) & 15u), s);
    const float v1 = __fmul_rn(e2m1_to_f32((reg >> (8 * p + 4)) & 15u), s);
    out[p] = pack2<__nv_bfloat16>(v0, v1);
  }
}

__device__ __forceinline__ void mma_fallback(float (&d)[4], const Frag& f, bool nv, uint32_t bsel, int lane) {
  const int t = lane & 3;
  const uint32_t sa_g = __shfl_sync(0xffffffffu, f.sfa, lane & ~1);   // row g's scale word
  const uint32_t sa_g8 = __shfl_sync(0xffffffffu, f.sfa, lane | 1);   // row g + 8's
  auto sc = [&](uint32_t word, int half) -> float {  // scale of this lane's 8-run in half 0 (k < 32) or 1
    // nvfp4: k = 8t .. 8t+7 (+32) lies in 16-block t/2 (+2); mxfp4: in 32-block half (+ byte-select)
    const uint32_t byte = nv ? uint32_t((t >> 1) + 2 * half) : bsel + uint32_t(half);
    const uint32_t raw = (word >> (8 * byte)) & 0xffu;
    return nv ? e4m3_to_f32(raw) : e8m0_to_f32(raw);
  };
  uint32_t ag[8], ag8[8], bw[8];
  {
    uint32_t tmp[4];
    float s;
    s = sc(sa_g, 0); dequant8(f.a[0], s, s, tmp); for (int i = 0; i < 4; ++i) ag[i] = tmp[i];
    s = sc(sa_g, 1); dequant8(f.a[2], s, s, tmp); for (int i = 0; i < 4; ++i) ag[4 + i] = tmp[i];
    s = sc(sa_g8, 0); dequant8(f.a[1], s, s, tmp); for (int i = 0; i < 4; ++i) ag8[i] = tmp[i];
    s = sc(sa_g8, 1); dequant8(f.a[3], s, s, tmp); for (int i = 0; i < 4; ++i) ag8[4 + i] = tmp[i];
    s = sc(f.sfb, 0); dequant8(f.b[0], s, s, tmp); for (int i = 0; i < 4; ++i) bw[i] = tmp[i];
    s = sc(f.sfb, 1); dequant8(f.b[1], s, s, tmp); for (int i = 0; i < 4; ++i) bw[4 + i] = tmp[i];
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint32_t a[4] = {ag[2 * j], ag8[2 * j], ag[2 * j + 1], ag8[2 * j + 1]};
    mma16816<__nv_bfloat16>(d, a, bw[2 * j], bw[2 * j + 1]);
  }
}

// One warp per 16 x 8 output tile; 4 warps per block along N.
template <bool NV>
__global__ void __launch_bounds__(128) w4a4_kernel(const uint8_t* qa, const uint8_t* sa, const float* ga, int64_t M,
                                                   const uint8_t* qw, const uint8_t* sw, const float* gw, int64_t N,
                                                   int64_t K, const void* bias, void* out, int out_t) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t m0 = (int64_t)blockIdx.y * 16, n0 = ((int64_t)blockIdx.x * 4 + warp) * 8;
  if (n0 >= N) return;  // whole warp
  float d[4] = {0.f, 0.f, 0.f, 0.f};
  for (int64_t kk = 0; kk < K; kk += 64) {
    Frag f;
    load_frag<NV>(f, qa, sa, M, qw, sw, N, K, m0, n0, kk, lane);
    const uint32_t bsel = NV ? 0u : uint32_t((kk / 32) & 3);
#ifdef FOURBIT_BLOCK_SCALED_MMA
    mma_block_scaled(d, f, NV, bsel);
#else
    mma_fallback(d, f, NV, bsel, lane);
#endif
  }
  const float alpha = (ga ? __ldg(ga) : 1.f) * (gw ? __ldg(gw) : 1.f);
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + g + 8 * (i >> 1), n = n0 + 2 * t + (i & 1);
    if (m >= M || n >= N) continue;
    float v = d[i] * alpha;
    if (out_t == XT_F32) {
      if (bias) v += static_cast<const float*>(bias)[n];
      static_cast<float*>(out)[m * N + n] = v;
    } else if (out_t == XT_BF16) {
      if (bias) v += to_f32(static_cast<const __nv_bfloat16*>(bias)[n]);
      static_cast<__nv_bfloat16*>(out)[m * N + n] = __float2bfloat16_rn(v);
    } else {
      if (bias) v += to_f32(static_cast<const __half*>(bias)[n]);
      static_cast<__half*>(out)[m * N + n] = __float2half_rn(v);
    }
  }
}

__global__ void atom_probe_kernel(int* out) {
#ifdef FOURBIT_BLOCK_SCALED_MMA
  *out = 1;
#else
  *out = 0;
#endif
}

}  // namespace

void act_quantize(const void* x, int xt, int64_t M, int64_t K, int fmt, uint8_t* q, uint8_t* scales,
                  uint8_t* scales_blocked, int64_t blocked_bytes, float* gscale, uint32_t* amax_ws,
                  uintptr_t stream) {
  const int B = fmt == 0 ? 16 : 32;
  if (K % B) throw std::invalid_argument("act_quantize: K must be a multiple of the block size");
  if (fmt == 0 && !amax_ws) throw std::invalid_argument("act_quantize: nvfp4 needs the amax scratch word");
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  if (scales_blocked && cudaMemsetAsync(scales_blocked, 0, size_t(blocked_bytes), st) != cudaSuccess)
    throw std::runtime_error("act_quantize: memset failed");
  const int64_t n = M * K, nblocks = M * (K / B);
  if (n == 0) return;
  if (fmt == 0) {
    if (cudaMemsetAsync(amax_ws, 0, 4, st) != cudaSuccess) throw std::runtime_error("act_quantize: memset failed");
    const int grid = int(std::min<int64_t>((n + 255) / 256, 1024));
    if (xt == XT_F32) amax_kernel<float><<<grid, 256, 0, st>>>(static_cast<const float*>(x), n, amax_ws);
    else if (xt == XT_BF16) amax_kernel<__nv_bfloat16><<<grid, 256, 0, st>>>(static_cast<const __nv_bfloat16*>(x), n, amax_ws);
    else amax_kernel<__half><<<grid, 256, 0, st>>>(static_cast<const __half*>(x), n, amax_ws);
    check_launch("fourbit amax");
  }
  const int grid = int((nblocks + 127) / 128);
  if (xt == XT_F32)
    act_quant_kernel<float><<<grid, 128, 0, st>>>(static_cast<const float*>(x), M, K, fmt, amax_ws, gscale, q, scales, scales_blocked);
  else if (xt == XT_BF16)
    act_quant_kernel<__nv_bfloat16><<<grid, 128, 0, st>>>(static_cast<const __nv_bfloat16*>(x), M, K, fmt, amax_ws, gscale, q, scales, scales_blocked);
  else
    act_quant_kernel<__half><<<grid, 128, 0, st>>>(static_cast<const __half*>(x), M, K, fmt, amax_ws, gscale, q, scales, scales_blocked);
  check_launch("fourbit act_quantize");
}

void w4a4_linear(int fmt, const uint8_t* qa, const uint8_t* sa, const float* ga, int64_t M, const uint8_t* qw,
                 const uint8_t* sw, const float* gw, int64_t N, int64_t K, const void* bias, void* out, int out_t,
                 uintptr_t stream) {
  if (K % 64) throw std::invalid_argument("w4a4_linear: K must be a multiple of 64");
  if (M <= 0 || N <= 0) return;
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  dim3 grid(unsigned((N + 31) / 32), unsigned((M + 15) / 16));
  if (fmt == 0) w4a4_kernel<true><<<grid, 128, 0, st>>>(qa, sa, ga, M, qw, sw, gw, N, K, bias, out, out_t);
  else w4a4_kernel<false><<<grid, 128, 0, st>>>(qa, sa, ga, M, qw, sw, gw, N, K, bias, out, out_t);
  check_launch("fourbit w4a4_linear");
}

const char* w4a4_atom() {
  int* d = nullptr;
  int h = 0;
  if (cudaMalloc(&d, sizeof(int)) != cudaSuccess) { cudaGetLastError(); return "unknown"; }
  atom_probe_kernel<<<1, 1>>>(d);
  cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost);
  cudaFree(d);
  cudaGetLastError();
  return h ? "mxf4nvf4-block-scale" : "bf16-mma-fallback";
}

}  // namespace fourbit_cuda
