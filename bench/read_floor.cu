// A plain read of n bytes (no math; each thread XORs what it loads into one word, so nothing is dead code): the
// M = 1 targets' floor in the benchmark (bench/read_floor.py builds this file with -DL2P_LIB and calls l2p_read with
// policy 0), and, run standalone, an L2 eviction-policy probe. Loads, by `policy` / P:
//   0 plain: ld.global.nc.L1::no_allocate (csrc/cuda/gemv.cu's ldg_stream);
//   1 hint:  the same + .L2::cache_hint with a createpolicy.fractional.L2::evict_first policy (fraction 1.0);
//   2 last:  the same + an L2::evict_last policy, as a control that should not help.
// A thread reads 16-byte pieces i, i + stride, i + 2 stride, ... (stride = the grid's threads), four in flight.
// Why the probe: each line a read brings into the L2 evicts one; if that one is a dirty line of do_bench's flush (a
// 256 MB zero fill) it goes back to DRAM first. With evict_first the read's own lines would be the first candidates.
// Measured (H100 80GB HBM3, 2026-11-28, events, medians of 50): evict_first changes nothing (8.4 MB 5.7-8.1 us either
// way, 33.6 MB 14.9 / 14.9, 117 MB 44.6 / 44.8 at 2 CTAs an SM; evict_last is slower after the flush, 19.2 / 52.3),
// and the flushed read is not slower than the same read back to back (33.6 MB: 14.9 flushed, 15.9 back to back). So
// the flush's dirty lines do not slow a read of these sizes at the kernel level; do_bench's extra ~3-4 us an eager
// call is host and launch time (bench/probes/read_method.py). Copy (256 MB, flushed) 2.95 TB/s: the read reaches 77%
// of it at 33.6 MB and 89% at 117 MB, 12-14% faster than the Triton read of bench/read_floor.py.
// The probe: nvcc -std=c++17 -O3 -arch=sm_90a -o /tmp/l2p bench/read_floor.cu && /tmp/l2p
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

template <int P>  // 0 plain, 1 evict_first hint, 2 evict_last hint
__device__ __forceinline__ uint4 ld16(const void* p, uint64_t pol) {
  uint4 v;
  if (P == 0)
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z),
                 "=r"(v.w) : "l"(p));
  else
    asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], %5;"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p), "l"(pol));
  return v;
}

template <int P>
__global__ void __launch_bounds__(256) read_kernel(const uint8_t* q, int64_t n16, uint32_t* sink) {
  uint64_t pol = 0;
  if (P == 1) asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
  if (P == 2) asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(pol));
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  uint32_t acc = 0;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n16; i += 4 * stride) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u)
      v[u] = i + u * stride < n16 ? ld16<P>(q + (i + u * stride) * 16, pol) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < 4; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  sink[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

// For Python (bench/read_floor.py, bench/probes/read_method.py): nvcc -shared -Xcompiler -fPIC -DL2P_LIB ...; n a
// multiple of 16 bytes, sink grid * 256 words (each thread's XOR), policy as P above; returns the launch's error.
extern "C" int l2p_read(const void* q, long long n, void* sink, int grid, int policy, void* stream) {
  const auto st = static_cast<cudaStream_t>(stream);
  const auto* b = static_cast<const uint8_t*>(q);
  auto* o = static_cast<uint32_t*>(sink);
  if (policy == 0) read_kernel<0><<<grid, 256, 0, st>>>(b, n / 16, o);
  if (policy == 1) read_kernel<1><<<grid, 256, 0, st>>>(b, n / 16, o);
  if (policy == 2) read_kernel<2><<<grid, 256, 0, st>>>(b, n / 16, o);
  return int(cudaGetLastError());
}

__global__ void fill_kernel(uint4* p, int64_t n16) {  // the flush: zero 256 MB (torch's zero_ is such a kernel)
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n16; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = make_uint4(0, 0, 0, 0);
}

// Median us of 50 timed launches (after 10 warm-ups), cudaEvents around each launch, which follows a 256 MB zero fill
// of `flush` when fl (bench/probes/gemv_abl.cu times its GEMVs with this too).
template <class F> float flushed_median_us(F launch, bool fl, uint8_t* flush, int64_t flush_bytes, int sms) {
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> t;
  for (int r = 0; r < 60; ++r) {
    if (fl) fill_kernel<<<4 * sms, 512>>>(reinterpret_cast<uint4*>(flush), flush_bytes / 16);
    cudaEventRecord(e0);
    launch();
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms;
    cudaEventElapsedTime(&ms, e0, e1);
    if (r >= 10) t.push_back(ms * 1e3f);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

#ifndef L2P_LIB
int main() {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const int64_t flush_bytes = int64_t(1) << 28;
  const int64_t sizes[] = {8ll << 20, 29360128ll, 32ll << 20, 117440512ll};  // 4096^2, 4096x14336, 8192^2, 28672x8192
  uint8_t *q, *flush;
  uint32_t* sink;
  cudaMalloc(&q, 3 * (117440512ll));
  cudaMalloc(&flush, flush_bytes);
  cudaMalloc(&sink, 64 * sms * 256 * 4);
  cudaMemset(q, 1, 3 * 117440512ll);
  // copy bandwidth as bench/gpu_peers.py measures it: 256 MB device-to-device, flushed
  uint8_t* c2;
  cudaMalloc(&c2, flush_bytes);
  const auto timed = [&](auto launch, bool fl) { return flushed_median_us(launch, fl, flush, flush_bytes, sms); };
  const float cus = timed([&] { cudaMemcpyAsync(c2, flush, flush_bytes, cudaMemcpyDeviceToDevice); }, true);
  const double copy = 2.0 * flush_bytes / cus / 1e6;
  printf("copy (256 MB, flushed): %.1f us, %.2f TB/s\n", cus, copy);
  const char* names[] = {"plain", "evict_first", "evict_last"};
  for (int64_t n : sizes) {
    for (int per : {2, 4, 8}) {
      for (int fl = 1; fl >= 0; --fl) {
        printf("%6.1f MB per_sm %d %-8s", n / 1048576.0, per, fl ? "flushed" : "warm-ish");
        for (int P = 0; P < 3; ++P) {
          const auto launch = [&] {
            const int g = per * sms;
            if (P == 0) read_kernel<0><<<g, 256>>>(q, n / 16, sink);
            if (P == 1) read_kernel<1><<<g, 256>>>(q, n / 16, sink);
            if (P == 2) read_kernel<2><<<g, 256>>>(q, n / 16, sink);
          };
          const float us = timed(launch, fl);
          printf("  %s %7.2f us %4.0f%%", names[P], us, 100.0 * n / us / 1e6 / copy);
        }
        printf("\n");
      }
    }
  }
  printf("(warm-ish: no flush, the same n bytes read back to back; part of them may hit in the L2)\n");
  return cudaDeviceSynchronize() != cudaSuccess;
}
#endif
