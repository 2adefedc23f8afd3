// wgmma issue-rate probe (no decode, no loads): how many SM cycles does one m64nNk16 bf16 wgmma take when a CTA's
// warpgroups issue nothing else, with A from registers (gemm_rs.cu's form) or from shared memory (gemm_tc.cu's), for
// N = 8 .. 256 x rows? The register-A GEMM finished one 128-row x 64-K chunk (8 wgmmas) every ~820 cycles an SM at
// N = 8 and at N = 64 alike (bench/benchmarks_history.md, seventeenth session): this says whether the wgmma itself
// sets that floor. Each step is gemm_rs's: fence, 4 wgmmas (k16 steps of one 64-K chunk), commit, wait for all but the
// last `NA - 1` groups. One CTA an SM, 1 or 2 warpgroups; prints cycles per wgmma an SM and the share of the tensor
// pipe's dense bf16 peak (N / 2 cycles a wgmma: 2048 bf16 MACs a cycle an SM).
// FP8 rows (gemm_w4a8.cu's form): m64nNk32 E4M3 with A from registers; "+promo" also starts each step from a zero
// accumulator (scale-d = 0), waits for it (NA 1) and adds it into a second one with N / 2 FFMAs, the W4A8 kernel's
// per-128-K promotion without its decode (the dense FP8 peak is also N / 2 cycles a wgmma: twice the K at twice
// the rate). H100 80GB HBM3, 2026-11-27, N = 128, 2 warpgroups: 64.0 cycles (100%) without, 84.2 (76%) with the
// promotion; N = 64 with it 35.8 (89%).
// Build and run on the GPU machine: nvcc -std=c++17 -O3 -arch=sm_90a -o /tmp/wgmma_rate bench/probes/wgmma_rate.cu
// && /tmp/wgmma_rate
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../../csrc/cuda/common.cuh"
#include "../../csrc/cuda/hopper.cuh"
#include "../../csrc/cuda/wgmma.cuh"

using namespace fourbit_cuda;
using XT = __nv_bfloat16;

constexpr int kIters = 2048;  // steps (4 wgmmas each) a warpgroup

template <int N, int WG, bool RS, int NA, int FP8 = 0>  // FP8: 1 E4M3 register-A, 2 with the promotion
__global__ void __launch_bounds__(WG * 128, 1) probe_kernel(long long* cycles, float* sink) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) uint8_t dyn[];
  uint8_t* base = dyn + ((1024 - (smem_u32(dyn) & 1023)) & 1023);
  // B: [N rows][64 K] bf16 (128-byte swizzle rows, N * 128 bytes); A (shared-memory form): [64 rows][64 K] after it
  for (int i = threadIdx.x; i < (N + 64) * 128 / 4; i += blockDim.x)
    reinterpret_cast<uint32_t*>(base)[i] = 0x3f803f80u;  // bf16 1.0 pairs: finite products
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // the generic stores, seen by the async proxy
  __syncthreads();
  const uint64_t bd = desc_sw128(smem_u32(base)), ad = desc_sw128(smem_u32(base) + N * 128);
  uint32_t a[4] = {0x3f803f80u, 0x3f803f80u, 0x3f803f80u, 0x3f803f80u};
  float acc[N / 2], tot[N / 2];
  uint32_t w[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) w[i] = threadIdx.x * (i + 7);
#pragma unroll
  for (int i = 0; i < N / 2; ++i) acc[i] = tot[i] = 0.f;
  __syncthreads();
  const long long t0 = clock64();
  for (int it = 0; it < kIters; ++it) {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      if constexpr (FP8 != 0) wgmma_rs_e4m3<N>(acc, a, bd + 2 * kk, FP8 >= 2 ? kk : 1);
      else if (RS) wgmma_rs<N, XT>(acc, a, bd + 2 * kk);
      else wgmma_ss<N, XT>(acc, ad + 2 * kk, bd + 2 * kk);
    }
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    if (FP8 == 3) {  // ~96 ALU instructions on registers the wgmmas do not read (the W4A8 decode's amount)
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        w[j & 7] = __vabsdiffu4(w[j & 7] & 0x0f0f0f0fu, w[(j + 3) & 7]) | (~(w[(j + 5) & 7] + 0x80808080u) & 0x80808080u);
        w[(j + 1) & 7] ^= w[j & 7] >> 4;
      }
    }
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(NA - 1) : "memory");
    if (FP8 >= 2) {
#pragma unroll
      for (int i = 0; i < N / 2; ++i) asm volatile("" : "+f"(acc[i]) :: "memory");
#pragma unroll
      for (int i = 0; i < N / 2; ++i) tot[i] = fmaf(1.0001f, acc[i], tot[i]);
    }
  }
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
  __syncthreads();
  const long long t1 = clock64();
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < N / 2; ++i) s += acc[i] + tot[i];
  for (int i = 0; i < 8; ++i) s += float(w[i]);
  sink[blockIdx.x * blockDim.x + threadIdx.x] = s;
  if (threadIdx.x == 0) cycles[blockIdx.x] = t1 - t0;
#endif
}

template <int N, int WG, bool RS, int NA, int FP8 = 0>
void run(int sms, long long* dc, float* ds) {
  const auto fn = probe_kernel<N, WG, RS, NA, FP8>;
  const int smem = (N + 64) * 128 + 1024;
  cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  float best = 1e30f;
  for (int rep = 0; rep < 3; ++rep) {
    fn<<<sms, WG * 128, smem>>>(dc, ds);
    std::vector<long long> c(sms);
    cudaMemcpy(c.data(), dc, sizeof(long long) * sms, cudaMemcpyDeviceToHost);
    std::sort(c.begin(), c.end());
    best = std::min(best, float(c[sms / 2]) / (kIters * 4.f * WG));  // median CTA, cycles per wgmma an SM
  }
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) { std::printf("N=%d: %s\n", N, cudaGetErrorString(e)); return; }
  std::printf("%-10s N = %3d  warpgroups %d  NA %d: %7.1f cycles a wgmma an SM, %5.1f%% of the dense peak\n",
              FP8 == 3 ? "+alu" : FP8 == 2 ? "e4m3+promo" : FP8 ? "e4m3 rs" : RS ? "rs" : "ss", N, WG, NA, best,
              100.f * (N / 2.f) / best);
}

template <int N> void sweep(int sms, long long* dc, float* ds) {
  run<N, 1, true, 3>(sms, dc, ds);
  run<N, 2, true, 3>(sms, dc, ds);
  run<N, 2, true, 1>(sms, dc, ds);
  run<N, 2, false, 3>(sms, dc, ds);
}

int main() {
  int dev = 0, sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, dev);
  std::printf("%s, %d SMs; %d steps of 4 wgmmas a warpgroup\n", prop.name, sms, kIters);
  long long* dc;
  float* ds;
  cudaMalloc(&dc, sizeof(long long) * sms);
  cudaMalloc(&ds, sizeof(float) * sms * 256);
  run<128, 2, true, 3, 1>(sms, dc, ds);
  run<128, 2, true, 1, 1>(sms, dc, ds);
  run<128, 2, true, 1, 2>(sms, dc, ds);
  run<64, 2, true, 1, 2>(sms, dc, ds);
  run<128, 2, true, 1, 3>(sms, dc, ds);
  if (getenv("FP8_ONLY")) return 0;
  sweep<8>(sms, dc, ds);
  sweep<16>(sms, dc, ds);
  sweep<64>(sms, dc, ds);
  sweep<128>(sms, dc, ds);
  sweep<256>(sms, dc, ds);
  return 0;
}
