// Load-pattern probe for the M = 1 GEMV (no math): how fast can 8192 rows x 4096 bytes (a 4-bit 8192^2 weight,
// 32 MB) be streamed with the access pattern of csrc/cuda/gemv.cu's gemv_nib4_kernel, against a copy-like stream
// and two alternatives? Each kernel XORs what it loads into one word per thread (kept, so nothing is dead code).
// Build and run on the GPU machine: nvcc -O3 -arch=sm_90a -o /tmp/probe bench/probes/gemv_loads.cu && /tmp/probe
#include <cstdio>
#include <cstdint>
#include <cuda_runtime.h>

constexpr int N = 8192, RB = 4096;  // rows, bytes per row
__device__ __forceinline__ uint4 ldg(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ uint32_t fold(uint4 v) { return v.x ^ v.y ^ v.z ^ v.w; }

// A: copy-like grid-stride stream, 4 independent 16-byte loads per thread per iteration
__global__ void __launch_bounds__(256) stream_kernel(const uint8_t* q, uint32_t* sink) {
  const int64_t n16 = int64_t(N) * RB / 16;
  uint32_t acc = 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n16; i += 4 * stride) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) v[u] = i + u * stride < n16 ? ldg(q + (i + u * stride) * 16) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < 4; ++u) acc ^= fold(v[u]);
  }
  sink[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

// B: gemv_nib4's pattern. Block = 32 rows (4 tiles of 8), 8 warps; warp w takes 64-byte steps w, w + 8, ...; lane
// (g, t) loads 16 bytes at step * 64 + t * 16 of row tile * 8 + g, for the 4 tiles; D steps in flight per warp.
template <int D>
__global__ void __launch_bounds__(256, 2) gemv_pattern_kernel(const uint8_t* q, uint32_t* sink) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int n0 = blockIdx.x * 32, nst = RB / 64;
  uint32_t acc = 0;
  uint4 buf[D][4];
  auto load = [&](int d, int st) {
#pragma unroll
    for (int r = 0; r < 4; ++r) buf[d][r] = ldg(q + int64_t(n0 + r * 8 + g) * RB + st * 64 + t * 16);
  };
#pragma unroll
  for (int d = 0; d < D; ++d) if (warp + d * 8 < nst) load(d, warp + d * 8);
  for (int st = warp; st < nst; st += 8 * D) {
#pragma unroll
    for (int d = 0; d < D; ++d) {
      const int s = st + d * 8;
      if (s >= nst) break;
#pragma unroll
      for (int r = 0; r < 4; ++r) acc ^= fold(buf[d][r]);
      if (s + 8 * D < nst) load(d, s + 8 * D);
    }
  }
  sink[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

// C: row runs. Block = 32 rows, 8 warps; warp w owns rows 4w .. 4w + 3 and reads 512 contiguous bytes of each per
// step (lane * 16), D steps in flight.
template <int D>
__global__ void __launch_bounds__(256, 2) rowrun_kernel(const uint8_t* q, uint32_t* sink) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int n0 = blockIdx.x * 32 + warp * 4, nst = RB / 512;
  uint32_t acc = 0;
  uint4 buf[D][4];
  auto load = [&](int d, int st) {
#pragma unroll
    for (int r = 0; r < 4; ++r) buf[d][r] = ldg(q + int64_t(n0 + r) * RB + st * 512 + lane * 16);
  };
#pragma unroll
  for (int d = 0; d < D; ++d) if (d < nst) load(d, d);
  for (int st = 0; st < nst; st += D) {
#pragma unroll
    for (int d = 0; d < D; ++d) {
      if (st + d >= nst) break;
#pragma unroll
      for (int r = 0; r < 4; ++r) acc ^= fold(buf[d][r]);
      if (st + d + D < nst) load(d, st + d + D);
    }
  }
  sink[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

template <typename F>
float time_us(F launch, int reps = 50) {
  cudaEvent_t a, b;
  cudaEventCreate(&a); cudaEventCreate(&b);
  for (int i = 0; i < 5; ++i) launch(i);
  cudaEventRecord(a);
  for (int i = 0; i < reps; ++i) launch(i);
  cudaEventRecord(b);
  cudaEventSynchronize(b);
  float ms; cudaEventElapsedTime(&ms, a, b);
  return ms * 1e3f / reps;
}

int main() {
  const int R = 4;  // rotate over 4 buffers (128 MB > L2)
  uint8_t* q[R];
  for (auto& p : q) { cudaMalloc(&p, size_t(N) * RB); cudaMemset(p, 1, size_t(N) * RB); }
  uint32_t* sink; cudaMalloc(&sink, 64 << 20);
  uint8_t* dst; cudaMalloc(&dst, size_t(N) * RB);
  int sms; cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const double bytes = double(N) * RB;
  auto report = [&](const char* name, float us, double moved) { printf("%-34s %7.1f us  %5.2f TB/s\n", name, us, moved / us / 1e6); };
  float tc = time_us([&](int i) { cudaMemcpyAsync(dst, q[i % R], size_t(N) * RB, cudaMemcpyDeviceToDevice); });
  report("cudaMemcpy D2D (read + write)", tc, 2 * bytes);
  report("A stream, 4 loads/thread", time_us([&](int i) { stream_kernel<<<sms * 8, 256>>>(q[i % R], sink); }), bytes);
  report("B gemv pattern, 1 step in flight", time_us([&](int i) { gemv_pattern_kernel<1><<<N / 32, 256>>>(q[i % R], sink); }), bytes);
  report("B gemv pattern, 2 steps", time_us([&](int i) { gemv_pattern_kernel<2><<<N / 32, 256>>>(q[i % R], sink); }), bytes);
  report("B gemv pattern, 4 steps", time_us([&](int i) { gemv_pattern_kernel<4><<<N / 32, 256>>>(q[i % R], sink); }), bytes);
  report("C row runs, 1 step", time_us([&](int i) { rowrun_kernel<1><<<N / 32, 256>>>(q[i % R], sink); }), bytes);
  report("C row runs, 2 steps", time_us([&](int i) { rowrun_kernel<2><<<N / 32, 256>>>(q[i % R], sink); }), bytes);
  report("C row runs, 4 steps", time_us([&](int i) { rowrun_kernel<4><<<N / 32, 256>>>(q[i % R], sink); }), bytes);
  cudaError_t e = cudaDeviceSynchronize();
  printf("%s\n", cudaGetErrorString(e));
  return 0;
}
