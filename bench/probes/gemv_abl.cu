// Decode-GEMV ablations (M = 1, or the M of argv[2], bf16 x), kernel times without Python: csrc/cuda/gemv.cu built with
// -DFOURBIT_GEMV_ABL=A (0 the kernel as shipped; 1 without the scale / zero multiplies; 2 without any decode; 3 int4
// codes decoded by bits, no table lookups; 1-3 give wrong results) and timed against the plain read of
// bench/read_floor.cu, each launch after a 256 MB L2 flush, cudaEvents around the launch, median of 50.
// Why: to price each part of the GEMV's per-code work before rewriting it (which part bounds the M = 1 time).
// Build (here, for the GPU machine): for A in 0 1 2 3; do nvcc -std=c++17 -O3 --expt-relaxed-constexpr -arch=sm_90a
//   -Icsrc -DFOURBIT_GEMV_ABL=$A -o .abl/abl$A bench/probes/gemv_abl.cu csrc/cuda/gemv.cu csrc/cuda/gemm_sm.cu; done
// (gemv_abl.cu itself does not depend on A; gemv.cu does.)
#define L2P_LIB
#include "../read_floor.cu"

#include <cuda_bf16.h>

#include <string>

#include "cuda/api.h"
#include "cuda/common.cuh"

using fourbit_cuda::LinearArgs;

int main(int argc, char** argv) {
  const std::string tag = argc > 1 ? argv[1] : "?";
  const int M = argc > 2 ? std::atoi(argv[2]) : 1;  // <= 64
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const int64_t flush_bytes = int64_t(1) << 28, maxw = 28672ll * 8192 / 2;
  uint8_t *q, *flush, *sc8, *zeros;
  float *scf, *lut, *gs, *ws;
  __nv_bfloat16 *x, *out;
  uint32_t* sink;
  cudaMalloc(&q, maxw);
  cudaMalloc(&flush, flush_bytes);
  cudaMalloc(&sink, 8 * sms * 256 * 4);
  cudaMalloc(&sc8, maxw / 8);
  cudaMalloc(&scf, maxw / 16 * 4);
  cudaMalloc(&zeros, maxw / 64);
  cudaMalloc(&lut, 64);
  cudaMalloc(&gs, 4);
  cudaMalloc(&ws, 64ll << 20);
  cudaMalloc(&x, 64 * 16384 * 2);
  cudaMalloc(&out, 64 * 32768 * 2);
  cudaMemset(q, 0x5a, maxw);
  cudaMemset(sc8, 0x38, maxw / 8);  // E4M3 1.0 / E8M0 2^-71: finite either way
  cudaMemset(scf, 0x3c, maxw / 16 * 4);
  cudaMemset(zeros, 7, maxw / 64);
  cudaMemset(lut, 0x3e, 64);
  cudaMemset(gs, 0x3f, 4);
  cudaMemset(x, 0x3c, 64 * 16384 * 2);
  const auto timed = [&](auto launch) { return flushed_median_us(launch, true, flush, flush_bytes, sms); };
  const int64_t shapes[][2] = {{4096, 4096}, {8192, 8192}, {28672, 8192}, {4096, 14336}, {14336, 4096}};
  struct Fmt { const char* name; int sk; int G; bool zeros; bool gscale; };
  const Fmt fmts[] = {{"int4", fourbit_cuda::SK_F32, 128, true, false}, {"nf4", fourbit_cuda::SK_F32, 64, false, false},
                      {"nvfp4", fourbit_cuda::SK_E4M3, 16, false, true}, {"mxfp4", fourbit_cuda::SK_E8M0, 32, false, false}};
  printf("== %s (us, M = %d bf16, after a flush)\n", tag.c_str(), M);
  for (const auto& sh : shapes) {
    const int64_t N = sh[0], K = sh[1];
    const float rd = timed([&] { l2p_read(q, N * K / 2, sink, 4 * sms, 0, nullptr); });
    printf("%5lldx%-5lld read %6.1f", (long long)N, (long long)K, rd);
    for (const auto& f : fmts) {
      LinearArgs a{};
      a.x = x; a.xt = fourbit_cuda::XT_BF16; a.M = M; a.q = q; a.qk = fourbit_cuda::QK_NIB4;
      a.N = N; a.K = K; a.G = f.G; a.scales = f.sk == fourbit_cuda::SK_F32 ? static_cast<void*>(scf) : sc8;
      a.sk = f.sk; a.zeros = f.zeros ? zeros : nullptr; a.gscale = f.gscale ? gs : nullptr; a.lut = lut;
      a.out = out; a.ws = ws; a.ws_elems = (64ll << 20) / 4;
      const float us = timed([&] { fourbit_cuda::linear(a, 0); });
      printf("  %s %6.1f", f.name, us);
    }
    printf("\n");
  }
  const cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) printf("error: %s\n", cudaGetErrorString(e));
  return e != cudaSuccess;
}
