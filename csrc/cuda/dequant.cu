// 4-bit dequantize to bf16 / fp16 on CUDA: out[n, k] = dtype(((lut[c] - z) * s) * g), each step one float32 rounding
// in this order (fourbit.formats._base.dequantize_generic), then RNE to the dtype; bit-exact with the reference and
// with the Triton kernels (kernels/dequantize.py), which keep every case this one does not take (float32 output, 8-bit
// codes, group sizes that are not a power of two, misaligned codes).
//   - The weight is read as a flat stream of 32-bit words (8 codes, element 8i + j in nibble j: the canonical
//     layout's element 2i in the low nibble of byte i). G divides K, so the scale of flat element f is scales[f / G]
//     (the [N, K/G] array read flat), and a power-of-two G >= 8 makes that a shift with every word inside one group.
//   - Lane l of a warp takes words w0 + l (+ 256 u for u < 4): each load instruction reads 128 contiguous bytes of
//     codes and each 16-byte store writes 512 contiguous bytes, so no sector is written in halves. A thread issues
//     its 4 words' code, scale and zero loads before the first decode.
//   - lut[c] is a shared-memory load (16 floats: the 32 lanes' codes hit distinct banks or share a word).
// Measured (H200, 2026-11-28, bench/probes/dequant_cuda.py, one-call CUDA graphs, us, Triton -> this kernel, bf16 out,
// int4 / nf4 / nvfp4 / mxfp4; bit-identical outputs): 8192^2 60.4 / 50.6 / 65.7 / 60.4 -> 48.7 / 48.5 / 48.4 / 47.9
// (64-83% -> 85-86% of copy), 14336x4096 53.6 / 43.5 / 58.3 / 53.7 -> 42.7-43.2, 4096^2 19.6 / 16.4 / 20.9 / 20.0 ->
// 15.7-16.5; fp16 out 49.9-50.5 -> 48.0-48.7. The Triton bf16 path pays for its RNE by bits (the interpreter's cast
// truncates). Float32 out through this mapping (two 16-byte stores a lane, 32 bytes apart) was slower than Triton's:
// 8192^2 123.6-144.7 against 86.5-89.9 us, so it stays there. Dequantize + cuBLAS in the same run, 4096^2 M = 4096:
// 204.1 / 201.8 / 204.4 / 211.1 -> 200.4 / 200.7 / 201.6 / 195.4 (bf16 cuBLAS 187.7); 8192^2 M = 1024: 244.4 / 235.4 /
// 253.5 / 238.2 -> 230.5 / 231.2 / 240.6 / 224.9 (193.7).
#include <stdexcept>

#include "api.h"
#include "common.cuh"
#include "nib4.cuh"

namespace fourbit_cuda {
namespace {

constexpr int kDqThreads = 256;
constexpr int kDqWords = 4;  // words a thread (loads in flight before the first decode)

// 8 float32 values -> 8 OT (bf16 / fp16) at p (16-byte aligned), RNE.
template <typename OT> __device__ __forceinline__ void store8(OT* p, const float (&v)[8]) {
  *reinterpret_cast<uint4*>(p) = make_uint4(pack2<OT>(v[0], v[1]), pack2<OT>(v[2], v[3]), pack2<OT>(v[4], v[5]),
                                            pack2<OT>(v[6], v[7]));
}

template <typename OT, int SK, bool HZ, bool HG>
__global__ void __launch_bounds__(kDqThreads) dequant_nib4_kernel(const uint32_t* __restrict__ q,
                                                                  const void* __restrict__ scales,
                                                                  const uint8_t* __restrict__ zeros,
                                                                  const float* __restrict__ gscale,
                                                                  const float* __restrict__ lut, OT* __restrict__ out,
                                                                  int64_t words, int gshift) {
  __shared__ float tbl[16];
  if (threadIdx.x < 16) tbl[threadIdx.x] = __ldg(lut + threadIdx.x);
  const int64_t w0 = (int64_t)blockIdx.x * (kDqThreads * kDqWords) + threadIdx.x;
  uint32_t c[kDqWords], sr[kDqWords], zr[kDqWords];
#pragma unroll
  for (int u = 0; u < kDqWords; ++u) {
    const int64_t i = w0 + u * kDqThreads, gi = (i << 3) >> gshift;
    const bool ok = i < words;
    c[u] = ok ? __ldg(q + i) : 0u;
    sr[u] = ok ? ld_scale<SK>(scales, gi) : 0u;
    zr[u] = HZ && ok ? __ldg(zeros + gi) : 0u;
  }
  const float g = HG ? __ldg(gscale) : 1.f;
  __syncthreads();  // tbl
  const char* tb = reinterpret_cast<const char*>(tbl);
#pragma unroll
  for (int u = 0; u < kDqWords; ++u) {
    const int64_t i = w0 + u * kDqThreads;
    if (i >= words) break;
    const float s = dec_scale<SK>(sr[u]), z = float(zr[u]);
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {  // byte offset of lut[code j] = code * 4
      const uint32_t off = (j == 0 ? c[u] << 2 : c[u] >> (4 * j - 2)) & 0x3cu;
      float t = *reinterpret_cast<const float*>(tb + off);
      if (HZ) t = __fsub_rn(t, z);
      t = __fmul_rn(t, s);
      if (HG) t = __fmul_rn(t, g);
      v[j] = t;
    }
    store8<OT>(out + (i << 3), v);
  }
}

template <typename OT, int SK, bool HZ, bool HG>
void launch_dq(const DequantArgs& a, int gshift, cudaStream_t st) {
  const int64_t words = a.N * a.K / 8, per = int64_t(kDqThreads) * kDqWords;
  dequant_nib4_kernel<OT, SK, HZ, HG><<<unsigned((words + per - 1) / per), kDqThreads, 0, st>>>(
      reinterpret_cast<const uint32_t*>(a.q), a.scales, a.zeros, a.gscale, a.lut, reinterpret_cast<OT*>(a.out),
      words, gshift);
  check_launch("fourbit dequantize");
}

template <typename OT, int SK>
void launch_dq_sk(const DequantArgs& a, int gshift, cudaStream_t st) {
  const bool hz = a.zeros != nullptr, hg = a.gscale != nullptr;
  if (hz && hg) launch_dq<OT, SK, true, true>(a, gshift, st);
  else if (hz) launch_dq<OT, SK, true, false>(a, gshift, st);
  else if (hg) launch_dq<OT, SK, false, true>(a, gshift, st);
  else launch_dq<OT, SK, false, false>(a, gshift, st);
}

template <typename OT>
void launch_dq_ot(const DequantArgs& a, int gshift, cudaStream_t st) {
  if (a.sk == SK_F32) launch_dq_sk<OT, SK_F32>(a, gshift, st);
  else if (a.sk == SK_E4M3) launch_dq_sk<OT, SK_E4M3>(a, gshift, st);
  else launch_dq_sk<OT, SK_E8M0>(a, gshift, st);
}

}  // namespace

bool dequantize_takes(const DequantArgs& a) {
  const uintptr_t al = reinterpret_cast<uintptr_t>(a.q) | reinterpret_cast<uintptr_t>(a.out);
  return a.N > 0 && a.K > 0 && a.K % 8 == 0 && a.G >= 8 && log2_exact(a.G) >= 0 && a.K % a.G == 0 &&
         a.sk >= SK_F32 && a.sk <= SK_E8M0 && (a.ot == XT_BF16 || a.ot == XT_F16) && a.lut != nullptr &&
         (al & 15u) == 0 && (a.sk != SK_F32 || (reinterpret_cast<uintptr_t>(a.scales) & 3u) == 0);
}

void dequantize(const DequantArgs& a, uintptr_t stream) {
  if (!dequantize_takes(a))
    throw std::invalid_argument("cuda_dequantize: needs nib4 codes [N, K/2] with K % 8 == 0, a power-of-two group "
                                "size >= 8 dividing K, float32 / E4M3 / E8M0 scales, a bf16 / fp16 output and 16-byte "
                                "aligned codes and out");
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  const int gshift = log2_exact(a.G);
  if (a.ot == XT_BF16) launch_dq_ot<__nv_bfloat16>(a, gshift, st);
  else launch_dq_ot<__half>(a, gshift, st);
}

}  // namespace fourbit_cuda
