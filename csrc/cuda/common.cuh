// Shared device helpers of the fourbit CUDA kernels: exact scale decoders, the fp4_e2m1 / E4M3 encoders of the
// reference rules, the 128x4 blocked scale-layout address, and the warp-level MMA atoms.
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include <atomic>
#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "api.h"

namespace fourbit_cuda {

enum SKind : int { SK_F32 = 0, SK_E4M3 = 1, SK_E8M0 = 2 };
enum QKind : int { QK_NIB4 = 0, QK_S8 = 1, QK_U8 = 2 };
enum XType : int { XT_F32 = 0, XT_BF16 = 1, XT_F16 = 2 };

// OCP E4M3 (float8_e4m3fn) byte -> f32, exact (0x7F/0xFF NaN).
__device__ __forceinline__ float e4m3_to_f32(uint32_t b) {
  uint32_t s = (b >> 7) & 1u, e = (b >> 3) & 0xfu, m = b & 7u;
  float v;
  if (e == 15u && m == 7u) v = __int_as_float(0x7fc00000);
  else if (e == 0u) v = float(m) * 0.001953125f;  // m * 2^-9, exact
  else v = __int_as_float(int(((e + 120u) << 23) | (m << 20)));
  return s ? -v : v;
}
// E8M0 byte -> 2^(b-127) (0xFF NaN, 0x00 the subnormal 2^-127), exact.
__device__ __forceinline__ float e8m0_to_f32(uint32_t b) {
  if (b == 255u) return __int_as_float(0x7fc00000);
  if (b == 0u) return __int_as_float(0x00400000);
  return __int_as_float(int(b << 23));
}
// One stored scale (raw bits: float bits for SK_F32, the byte otherwise) -> f32, exact.
__device__ __forceinline__ float decode_scale(int sk, uint32_t raw) {
  if (sk == SK_F32) return __uint_as_float(raw);
  return sk == SK_E4M3 ? e4m3_to_f32(raw & 0xffu) : e8m0_to_f32(raw & 0xffu);
}

// Round half to even to an integer-valued float (|v| < 2^22), as the CPU codec.
__device__ __forceinline__ float rne_small(float v) {
  float a = fabsf(v);
  float r = __fsub_rn(__fadd_rn(a, 12582912.0f), 12582912.0f);
  return copysignf(r, v);
}
// Non-negative finite f32 -> E4M3 byte, RNE, saturating at 448 (0x7E); the CPU codec's rule (csrc/cpu/common.h),
// equal to torch's clamp(+-448).to(float8_e4m3fn) on non-negative input.
__device__ __forceinline__ uint32_t f32_to_e4m3_pos(float f) {
  if (!(f < 464.0f)) return 0x7eu;
  if (f < 0.015625f) return uint32_t(rne_small(__fmul_rn(f, 512.0f)));
  uint32_t u = __float_as_uint(f), e = (u >> 23) - 127u + 7u, mant = u & 0x7fffffu;
  uint32_t r = mant >> 20, rem = mant & 0xfffffu;
  uint32_t up = (rem > 0x80000u) || (rem == 0x80000u && (r & 1u));
  uint32_t v = (e << 3) + r + up;
  return v > 0x7eu ? 0x7eu : v;
}
// nvfp4's block scale byte: E4M3(bmax / (6 g)), 1.0 (0x38) where that is 0 (fourbit.formats.nvfp4; w4a4.cu's
// act_quant_kernel spells out the same rule).
__device__ __forceinline__ uint32_t nvfp4_scale_byte(float bmax, float g) {
  const uint32_t sb = f32_to_e4m3_pos(__fdiv_rn(bmax, __fmul_rn(6.f, g)));
  return (sb & 0x7Fu) == 0u ? 0x38u : sb;
}
// fp4_e2m1 encode (fourbit.formats.fp4_e2m1.encode): RNE on the code, ties to even, saturating at 6, sign kept.
__device__ __forceinline__ uint32_t e2m1_encode(float v) {
  float a = fabsf(v);
  uint32_t m = a <= 0.25f ? 0u : a < 0.75f ? 1u : a <= 1.25f ? 2u : a < 1.75f ? 3u
             : a <= 2.5f ? 4u : a < 3.5f ? 5u : a <= 5.0f ? 6u : 7u;
  return m | (signbit(v) ? 8u : 0u);
}
// The same code by bit arithmetic (kernels/codecs.py e2m1_encode: ~12 instructions against the compares' ~20), for
// finite v: RNE on the code, saturating, sign kept.
__device__ __forceinline__ uint32_t e2m1_encode_bits(float v) {
  const float a = fminf(fabsf(v), 6.f);
  const uint32_t b = __float_as_uint(a);
  const uint32_t sub = __float_as_uint(__fmaf_rn(a, 2.f, 8388608.f)) - 0x4B000000u;  // RNE(2a) below 2 (2a exact)
  const uint32_t nrm = (b + (0x1FFFFFu - (252u << 22)) + ((b >> 22) & 1u)) >> 22;  // 1 mantissa bit, RNE, from 2
  return (a < 2.f ? sub : nrm) | ((__float_as_uint(v) >> 28) & 8u);
}
// floor(log2 x) of a positive finite float (subnormals too) and whether x is a power of two.
__device__ __forceinline__ int log2_floor(float x, bool& pow2) {
  const uint32_t b = __float_as_uint(x);
  if (b < 0x800000u) { pow2 = (b & (b - 1u)) == 0u; return -118 - __clz(int(b)); }  // -149 + (31 - clz)
  pow2 = (b & 0x7FFFFFu) == 0u;
  return int(b >> 23) - 127;
}
// mxfp4's E8M0 exponent of a block max (>= 0; fourbit.formats.mxfp4): floor(log2 bmax) - 2 ("floor") or
// ceil(log2(bmax / 6)) ("rceil"), -127 for 0, clamped to [-127, 127]. (w4a4.cu's act_quant_kernel spells out the
// same rule with frexpf.)
__device__ __forceinline__ int mx_exponent(float bmax, bool rceil) {
  int e = -127;
  bool pow2;
  if (!rceil) {
    if (bmax > 0.f) e = log2_floor(bmax, pow2) - 2;
  } else {
    const float t = __fdiv_rn(bmax, 6.f);
    if (t > 0.f) { const int fl = log2_floor(t, pow2); e = pow2 ? fl : fl + 1; }
  }
  return min(max(e, -127), 127);
}
// 2^-e exactly for e in [-127, 127] (2^-127 is the subnormal 0x00400000).
__device__ __forceinline__ float exp2_neg(int e) { return __int_as_float(-e >= -126 ? (127 - e) << 23 : 0x400000); }
// e2m1 code -> f32 (exact).
__device__ __forceinline__ float e2m1_to_f32(uint32_t c) {
  const float mag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  float v = mag[c & 7u];
  return (c & 8u) ? -v : v;
}

// Byte offset of scale (r, c) in the 128x4-tile layout (fourbit.layout.blocked_scale_offsets); c % 4 == 0 gives the
// first of 4 contiguous bytes (c .. c+3), so one 32-bit load fetches a row's 4 scales.
__host__ __device__ __forceinline__ int64_t blocked_offset(int64_t r, int64_t c, int64_t cols) {
  int64_t tiles_c = (cols + 3) / 4;
  return ((r / 128) * tiles_c + c / 4) * 512 + (r % 32) * 16 + ((r % 128) / 32) * 4 + c % 4;
}

// ---- element types as templates -------------------------------------------------------------------------------
// Programmatic dependent launch (sm_90 on; no-ops below): pdl_trigger lets the stream's next kernel, when it was
// launched with cudaLaunchAttributeProgrammaticStreamSerialization, start before this one ends; pdl_wait blocks the
// calling thread until the grids this kernel depends on have completed and their writes are visible. Why: the W4A8
// GEMM loads its weights while the activation quantizer before it still runs.
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
// Shared-memory address of a pointer into shared memory, and the cp.async helpers (16 bytes, L2 only; one group a
// commit; wait until at most N of this thread's groups are pending).
__device__ __forceinline__ uint32_t smem_u32(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }
// A per-thread value computed once before a loop and kept in a register: the volatile move hides where it came from,
// so the loop does not rebuild it from the thread index each iteration.
__device__ __forceinline__ uint32_t opaque_u32(uint32_t v) {
  asm volatile("mov.b32 %0, %0;\n" : "+r"(v));
  return v;
}
__device__ __forceinline__ int opaque_i32(int v) { return int(opaque_u32(uint32_t(v))); }
__device__ __forceinline__ int64_t opaque_i64(int64_t v) {
  asm volatile("mov.b64 %0, %0;\n" : "+l"(v));
  return v;
}
template <typename P> __device__ __forceinline__ const P* opaque_ptr(const P* v) {
  return reinterpret_cast<const P*>(opaque_i64(reinterpret_cast<int64_t>(v)));
}
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory");
}

template <typename T> struct Half2Of;
template <> struct Half2Of<__nv_bfloat16> { using T2 = __nv_bfloat162; };
template <> struct Half2Of<__half> { using T2 = __half2; };

template <typename T> __device__ __forceinline__ T from_f32(float f);
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float f) { return __float2bfloat16_rn(f); }
template <> __device__ __forceinline__ __half from_f32<__half>(float f) { return __float2half_rn(f); }
template <> __device__ __forceinline__ float from_f32<float>(float f) { return f; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(float v) { return v; }

template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <typename T> __device__ __forceinline__ uint32_t hmul2(uint32_t a, uint32_t b);
template <> __device__ __forceinline__ uint32_t hmul2<__nv_bfloat16>(uint32_t a, uint32_t b) {
  __nv_bfloat162 r = __hmul2(*reinterpret_cast<__nv_bfloat162*>(&a), *reinterpret_cast<__nv_bfloat162*>(&b));
  return *reinterpret_cast<uint32_t*>(&r);
}
template <> __device__ __forceinline__ uint32_t hmul2<__half>(uint32_t a, uint32_t b) {
  __half2 r = __hmul2(*reinterpret_cast<__half2*>(&a), *reinterpret_cast<__half2*>(&b));
  return *reinterpret_cast<uint32_t*>(&r);
}
template <typename T> __device__ __forceinline__ uint32_t hsub2(uint32_t a, uint32_t b);
template <> __device__ __forceinline__ uint32_t hsub2<__nv_bfloat16>(uint32_t a, uint32_t b) {
  __nv_bfloat162 r = __hsub2(*reinterpret_cast<__nv_bfloat162*>(&a), *reinterpret_cast<__nv_bfloat162*>(&b));
  return *reinterpret_cast<uint32_t*>(&r);
}
template <> __device__ __forceinline__ uint32_t hsub2<__half>(uint32_t a, uint32_t b) {
  __half2 r = __hsub2(*reinterpret_cast<__half2*>(&a), *reinterpret_cast<__half2*>(&b));
  return *reinterpret_cast<uint32_t*>(&r);
}

// D += A * B, m16n8k16, fp32 accumulation; A row-major 16x16 (4 regs), B col 16x8 (2 regs).
template <typename T> __device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                               uint32_t b1);
template <> __device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
                                                                    uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                             uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The same MMA with C = 0 (a fresh sum: ptxas reads RZ instead of four zeroed registers).
template <typename T> __device__ __forceinline__ void mma16816_z(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                                 uint32_t b1) {
  constexpr bool bf = std::is_same<T, __nv_bfloat16>::value;
  if (bf)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%10,%10,%10};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(0.f));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%10,%10,%10};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(0.f));
}

// An experiment's override: the integer in environment variable `name` if it is one of `allowed`, else 0.
inline int env_choice(const char* name, std::initializer_list<int> allowed) {
  const char* e = std::getenv(name);
  const int v = e ? std::atoi(e) : 0;
  for (const int a : allowed)
    if (v == a) return v;
  return 0;
}

// log2(G) for a power of two, else -1 (the group-size rules of the dequantize and quantize kernels).
inline int log2_exact(int64_t G) {
  if (G <= 0 || (G & (G - 1))) return -1;
  int s = 0;
  while ((int64_t(1) << s) < G) ++s;
  return s;
}

// (gmul, gshr) with k / G == __umulhi(k, gmul) >> gshr for every 0 <= k < 2^31 and 2 <= G <= 2^30: l = ceil(log2 G),
// gmul = ceil(2^(31 + l) / G) < 2^32, so k * gmul / 2^(31 + l) exceeds k / G by less than k / 2^(31 + l) < 1 / G,
// which never carries floor(k / G) over the next integer. Why: a runtime division inside a kernel's loop compiles to
// ~20-25 SASS instructions (I2F, MUFU.RCP, IMAD.HI...): ~25 of the ~200 of gemm_tc's producer step, and ~18 of the
// ~370 of the M = 1 GEMV's step, whose time it cost 1-4% (gemv.cu, round 14).
inline void divider(int G, uint32_t* gmul, int* gshr) {
  int l = 0;
  while ((int64_t(1) << l) < G) ++l;
  *gmul = uint32_t(((uint64_t(1) << (31 + l)) + uint64_t(G) - 1) / uint64_t(G));
  *gshr = l - 1;
}

// Launch settings are per device: cudaFuncSetAttribute applies to the current device only, so a flag set once per
// process left a second GPU's launches failing ("invalid argument", tests/test_multi_gpu.py). per_device keeps a call
// site's value (nonzero) for each device in the site's own cache, made by make() on that device's first call.
constexpr int kMaxDevices = 64;
inline int current_device() {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) { cudaGetLastError(); dev = 0; }
  return dev & (kMaxDevices - 1);
}
template <class F> int per_device(std::atomic<int> (&cache)[kMaxDevices], F make) {
  std::atomic<int>& c = cache[current_device()];
  int v = c.load(std::memory_order_acquire);
  if (v == 0) {  // two threads may both make it: the same value, set twice
    v = make();
    c.store(v, std::memory_order_release);
  }
  return v;
}
// Raises kernel fn's dynamic shared memory limit to `bytes` once per device (cache: the call site's).
template <class Kernel> void smem_limit(std::atomic<int> (&cache)[kMaxDevices], Kernel fn, int bytes) {
  per_device(cache, [&] {
    cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    return 1;
  });
}

// Multiprocessors of the current device (132, an H100 SXM, if the runtime cannot say): the split planners' wave size.
inline int sm_count() {
  int dev = 0, n = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    cudaGetLastError();
    return 132;
  }
  return n;
}

// Split-K over nch K chunks for a grid of `tiles` CTAs (the wgmma GEMMs' planners): S, the largest power of two that
// keeps tiles * S within one wave (one CTA an SM) with at least min_chunks chunks a split; per = ceil(nch / S) chunks
// a split, and S recomputed from per, so no split is empty.
inline void splitk_plan(int64_t tiles, int64_t nch, int64_t min_chunks, int* S_out, int* per_out) {
  int64_t S = 1;
  while (tiles * S * 2 <= sm_count() && nch / (S * 2) >= min_chunks) S *= 2;
  const int64_t per = (nch + S - 1) / S;
  *S_out = int((nch + per - 1) / per);
  *per_out = int(per);
}

// One fp32 result y[m, n] of a GEMV / GEMM kernel: into split-K partial blockIdx.y of ws [S, M, N] when the grid
// splits K (the reduce adds the global scale and bias), else times the global scale gs (if gscale), plus bias[n], as
// XT into out [M, N].
template <typename XT>
__device__ __forceinline__ void store_result(float v, int m, int n, int M, int N, float* ws, const float* gscale,
                                             float gs, const XT* bias, XT* out) {
  if (gridDim.y > 1) {
    ws[((int64_t)blockIdx.y * M + m) * N + n] = v;
  } else {
    if (gscale) v = v * gs;
    if (bias) v = v + to_f32(bias[n]);
    out[(int64_t)m * N + n] = from_f32<XT>(v);
  }
}

// Split-K epilogue: out[i] = cast(sum over the S partials ws[s, i] in order s = 0, 1, ... (deterministic), times the
// global scale, plus bias[i % N]); ws [S, M, N] float32, out [M, N]. Launched with programmatic dependent launch
// after the GEMM that wrote ws (which calls pdl_trigger first): its blocks start while the GEMM's last ones run and
// wait here for its results.
template <typename XT>
__global__ void splitk_reduce_kernel(const float* ws, int S, int M, int N, const float* gscale, const XT* bias,
                                     XT* out) {
  pdl_wait();
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, MN = (int64_t)M * N;
  if (i >= MN) return;
  float s = 0.f;
  for (int sp = 0; sp < S; ++sp) s += ws[sp * MN + i];
  if (gscale) s = s * __ldg(gscale);
  if (bias) s = s + to_f32(bias[i % N]);
  out[i] = from_f32<XT>(s);
}

// Throws std::runtime_error naming `what` when the last launch failed (bad configuration, missing kernel image).
inline void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// The split-K epilogue's launch, one thread an output element; bias and out are XT arrays.
template <typename XT>
void launch_splitk_reduce(const float* ws, int S, int M, int N, const float* gscale, const void* bias, void* out,
                          cudaStream_t st) {
  const int64_t MN = int64_t(M) * N;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned((MN + 255) / 256));
  cfg.blockDim = dim3(256);
  cfg.stream = st;
  cudaLaunchAttribute at = {};
  at.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  at.val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = &at;
  cfg.numAttrs = 1;
  cudaLaunchKernelEx(&cfg, splitk_reduce_kernel<XT>, ws, S, M, N, gscale, reinterpret_cast<const XT*>(bias),
                     reinterpret_cast<XT*>(out));
  check_launch("fourbit splitk_reduce");
}

// A split-K launch's checks and epilogue for the GEMMs that take LinearArgs: the float32 workspace must hold S
// partials of [M, N] (what: the caller's name for the error), and after the kernel the partials are reduced into
// a.out in x's dtype (bf16 / fp16) with the global scale and bias.
inline void require_splitk_ws(const LinearArgs& a, int S, const char* what) {
  if (S > 1 && (a.ws == nullptr || a.ws_elems < int64_t(S) * a.M * a.N))
    throw std::invalid_argument(std::string(what) + ": split-K workspace too small (see its _workspace function)");
}
// float32 elements of split-K workspace the planner plan(M, N, K, &S, &chunks) asks for (0: none).
template <class Plan> int64_t planned_workspace(int64_t M, int64_t N, int64_t K, Plan plan) {
  int S, per;
  plan(M, N, K, &S, &per);
  return S > 1 ? int64_t(S) * M * N : 0;
}
inline void reduce_splits(const LinearArgs& a, int S, cudaStream_t st) {
  if (S <= 1) return;
  if (a.xt == XT_BF16) launch_splitk_reduce<__nv_bfloat16>(a.ws, S, int(a.M), int(a.N), a.gscale, a.bias, a.out, st);
  else if (a.xt == XT_F16) launch_splitk_reduce<__half>(a.ws, S, int(a.M), int(a.N), a.gscale, a.bias, a.out, st);
  else launch_splitk_reduce<float>(a.ws, S, int(a.M), int(a.N), a.gscale, a.bias, a.out, st);  // W4A8's fp32 out
}

}  // namespace fourbit_cuda
