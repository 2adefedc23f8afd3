// W4A8's per-row activation quantizer: x [M, K] (f32 / bf16 / f16) -> x8 E4M3 bytes [M, K] and s float32 [M],
// bit-exact with fourbit.ops.w4a8.quantize_act_ref (and kernels/w4a8.quantize_act, the Triton twin):
//   s_m = amax_m / 448 over the row's finite |x| (float32 division, RNE); s_m = 0 -> 1; a row holding NaN / Inf gets
//   s_m = NaN and x8 = 0. x8 = E4M3(RNE(x / s_m)) by a float32 division (__fdiv_rn: no fast-math reciprocal), then
//   cvt.rn.satfinite (the reference clamps to +-448 before its RNE cast: the same byte, since RNE never rounds a
//   value <= 448 above it and satfinite maps anything above to 448).
// perm: x8 in a K order of the CUDA W4A8 GEMM (kernels/w4a8.x8_perm): inside each 128-K chunk real r goes to
//   1 (int4): 32 ((r >> 3) & 3) + 16 (r & 1) + 4 (r >> 5) + ((r >> 1) & 3),
//   2 (mxfp4): 32 ((r >> 3) & 3) + 16 ((r >> 2) & 1) + 4 (r >> 5) + (r & 3).
// A thread's 8 consecutive columns r0 .. r0 + 7 (r0 % 8 == 0) then land in two 4-byte words at 32 ((r0 >> 3) & 3) +
// 4 (r0 >> 5) and 16 bytes after: the even and the odd columns (1), or columns r0 .. r0 + 3 and r0 + 4 .. r0 + 7 (2).
// Why a CUDA kernel: the Triton one (one program a row, software E4M3 encode, byte-scattered permuted stores) took
// ~10 us at 256 x 8192 bf16 on an H100, ~16% of the W4A8 call at 8192^2 M = 256 (README, W4A8).
// One CTA a row, T threads (256; 128 for rows of at most 4096 columns, which then fit the kept registers), 16-byte
// loads; a thread's first kVecs pieces (8 columns each) stay in registers between the max and the encode (rows up to
// K = 8 kVecs T), further pieces are read again (L1 / L2). Why 128 for short rows: at 4096 x 4096 bf16 the 256-thread
// CTAs (4 an SM) took 31.1 us (H100 80GB HBM3, 2026-11-28, bench/probes/w8_rowwise.py), 1.5 TB/s: a CTA's loads are
// in flight only before its reduction, so more rows an SM keep more bytes in flight.
#include <cuda_fp8.h>

#include <stdexcept>
#include <string>

#include "api.h"
#include "common.cuh"

namespace fourbit_cuda {
namespace {

constexpr int kVecs = 4;  // pieces a thread keeps in registers (K <= 8 kVecs T; longer rows read the rest twice)

template <typename XT> struct Piece {  // 8 consecutive elements of a row: one 16-byte load (two for f32)
  static constexpr int U = sizeof(XT) / 2;
  uint4 u[U];
  __device__ __forceinline__ void load(const XT* p) {
#pragma unroll
    for (int i = 0; i < U; ++i) u[i] = __ldg(reinterpret_cast<const uint4*>(p) + i);
  }
  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < U; ++i) u[i] = make_uint4(0, 0, 0, 0);
  }
  __device__ __forceinline__ void floats(float (&f)[8]) const {
    const XT* v = reinterpret_cast<const XT*>(u);
#pragma unroll
    for (int i = 0; i < 8; ++i) f[i] = to_f32(v[i]);
  }
  // folds (max of the finite |v|, whether any v is NaN / Inf) into the running pair
  __device__ __forceinline__ void stats(float& amax, bool& bad) const {
    float f[8];
    floats(f);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const float a = fabsf(f[i]);
      if (a <= 3.402823466e38f) amax = fmaxf(amax, a); else bad = true;  // NaN and Inf fail the test
    }
  }
};

// E4M3 bytes of f[0..3] / s, byte i from f[i] (RNE division, RNE saturating conversion)
__device__ __forceinline__ uint32_t e4m3x4(const float* f, float s) {
  const __nv_fp8x2_storage_t lo = __nv_cvt_float2_to_fp8x2(make_float2(__fdiv_rn(f[0], s), __fdiv_rn(f[1], s)),
                                                           __NV_SATFINITE, __NV_E4M3);
  const __nv_fp8x2_storage_t hi = __nv_cvt_float2_to_fp8x2(make_float2(__fdiv_rn(f[2], s), __fdiv_rn(f[3], s)),
                                                           __NV_SATFINITE, __NV_E4M3);
  return uint32_t(lo) | (uint32_t(hi) << 16);
}

// Encodes the 8 columns c0 .. c0 + 7 (c0 % 8 == 0) of a row held in f and stores them at row (plain or permuted order)
__device__ __forceinline__ void store8(const float* f, float s, bool bad, uint8_t* row, int64_t c0, int perm) {
  uint32_t w0 = 0, w1 = 0;
  if (!bad) {
    if (perm == 1) {
      const float ev[4] = {f[0], f[2], f[4], f[6]}, od[4] = {f[1], f[3], f[5], f[7]};
      w0 = e4m3x4(ev, s); w1 = e4m3x4(od, s);
    } else {
      w0 = e4m3x4(f, s); w1 = e4m3x4(f + 4, s);
    }
  }
  if (perm) {
    const int r = int(c0 & 127);
    uint8_t* base = row + (c0 - r) + 32 * ((r >> 3) & 3) + 4 * (r >> 5);
    *reinterpret_cast<uint32_t*>(base) = w0;
    *reinterpret_cast<uint32_t*>(base + 16) = w1;
  } else {
    *reinterpret_cast<uint2*>(row + c0) = make_uint2(w0, w1);
  }
}

template <typename XT, int T>  // 1024 threads an SM at <= 64 registers (f32, two loads a piece: 768 at 79)
__global__ void __launch_bounds__(T, (sizeof(XT) == 4 ? 3 : 4) * 256 / T)
    act_e4m3_kernel(const XT* __restrict__ x, int64_t K, uint8_t* __restrict__ x8, float* __restrict__ s_out,
                    int perm) {
  pdl_trigger();  // the W4A8 GEMM after it may start its weight loads (it waits for this grid before reading x8)
  const int64_t m = blockIdx.x;
  const XT* src = x + m * K;
  const int np = int(K / 8);  // pieces of the row; thread t takes pieces t, t + T, ...
  Piece<XT> keep[kVecs];
  float amax = 0.f;
  bool bad = false;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {  // all kept loads issued before any use
    const int v = i * T + threadIdx.x;
    if (v < np) keep[i].load(src + 8 * v); else keep[i].zero();
  }
#pragma unroll
  for (int i = 0; i < kVecs; ++i) keep[i].stats(amax, bad);
  for (int v = kVecs * T + threadIdx.x; v < np; v += T) {
    Piece<XT> p;
    p.load(src + 8 * v);
    p.stats(amax, bad);
  }

  // block reduction: max over the warps' maxima, OR of the flags
  __shared__ float wmax[T / 32];
  __shared__ int wbad[T / 32];
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  const int anybad = __any_sync(0xffffffffu, bad);
  if ((threadIdx.x & 31) == 0) { wmax[threadIdx.x >> 5] = amax; wbad[threadIdx.x >> 5] = anybad; }
  __syncthreads();
  amax = wmax[0];
  bad = wbad[0] != 0;
#pragma unroll
  for (int w = 1; w < T / 32; ++w) { amax = fmaxf(amax, wmax[w]); bad = bad || wbad[w] != 0; }
  float s = __fdiv_rn(amax, 448.0f);
  if (s == 0.f) s = 1.f;
  if (bad) s = __int_as_float(0x7fc00000);
  if (threadIdx.x == 0) s_out[m] = s;

  uint8_t* row = x8 + m * K;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int v = i * T + threadIdx.x;
    if (v < np) {
      float f[8];
      keep[i].floats(f);
      store8(f, s, bad, row, 8 * int64_t(v), perm);
    }
  }
  for (int v = kVecs * T + threadIdx.x; v < np; v += T) {
    Piece<XT> p;
    p.load(src + 8 * v);
    float f[8];
    p.floats(f);
    store8(f, s, bad, row, 8 * int64_t(v), perm);
  }
}

template <typename XT>
void launch_act(const void* x, int64_t M, int64_t K, uint8_t* x8, float* s, int perm, cudaStream_t st) {
  const XT* xp = static_cast<const XT*>(x);
  if (K <= 8 * kVecs * 128) act_e4m3_kernel<XT, 128><<<unsigned(M), 128, 0, st>>>(xp, K, x8, s, perm);
  else act_e4m3_kernel<XT, 256><<<unsigned(M), 256, 0, st>>>(xp, K, x8, s, perm);
  check_launch("fourbit act_e4m3");
}

}  // namespace

void act_quantize_e4m3(const void* x, int xt, int64_t M, int64_t K, int perm, uint8_t* x8, float* s,
                       uintptr_t stream) {
  const auto fail = [](const char* rule) { throw std::invalid_argument(std::string("act_quantize_e4m3: ") + rule); };
  if (perm < 0 || perm > 2) fail("perm must be 0 (none), 1 (int4) or 2 (mxfp4)");
  if (M < 0 || M > 0x7fffffff) fail("M must be in [0, 2^31)");
  if (K <= 0 || K % 8 || K > (int64_t(1) << 30)) fail("K must be a positive multiple of 8 (16-byte loads)");
  if (perm && K % 128) fail("perm needs K % 128 == 0 (the GEMM's 128-K chunks)");
  const auto al = [](const void* p, unsigned a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; };
  if (!al(x, 16) || !al(x8, 8) || !al(s, 4))
    throw std::invalid_argument("act_quantize_e4m3: x must be 16-byte aligned, x8 8-byte aligned, s 4-byte aligned");
  if (M == 0) return;
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  if (xt == XT_BF16) launch_act<__nv_bfloat16>(x, M, K, x8, s, perm, st);
  else if (xt == XT_F16) launch_act<__half>(x, M, K, x8, s, perm, st);
  else launch_act<float>(x, M, K, x8, s, perm, st);
}

}  // namespace fourbit_cuda
