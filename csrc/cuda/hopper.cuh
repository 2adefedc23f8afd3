// Hopper (sm_90a) pieces shared by the wgmma GEMMs (csrc/cuda/gemm_tc.cu, gemm_rs.cu, gemm_w4a8.cu): mbarriers, TMA
// tile loads and their tensor maps, the 128-byte-swizzle wgmma descriptor, the device check, a division by a runtime
// constant, and the split-K reduce inside a thread-block cluster. The device functions are plain PTX; the wgmma
// kernels themselves compile only for sm_90a.
#pragma once
#include <stdint.h>

#include <stdexcept>
#include <string>

#include <cuda.h>          // CUtensorMap and its enums (types only: the driver call goes through cudart)
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled
#include <cuda_runtime.h>

#include "common.cuh"

namespace fourbit_cuda {

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  uint64_t state;
  asm volatile("mbarrier.arrive.shared::cta.b64 %0, [%1];\n" : "=l"(state) : "r"(bar) : "memory");
  asm volatile("" :: "l"(state));  // the arrival state is not needed
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  while (!done) {
    asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                 " selp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done) : "r"(bar), "r"(parity) : "memory");
  }
}
// One arrival that also expects `bytes` of TMA data on the barrier before its phase completes.
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" :: "r"(bar), "r"(bytes) : "memory");
}
// The S-stage TMA ring of the register-A GEMMs (gemm_rs.cu, gemm_w4a8.cu): full[s] at bars + 8 s completes on the
// producer's arrival plus the stage's TMA bytes, empty[s] at bars + 8 (S + s) on one arrival per consumer warp.
// ring_init: by one thread, before the CTA's first barrier.
__device__ __forceinline__ void ring_init(uint32_t bars, int S, int consumer_warps) {
  for (int s = 0; s < S; ++s) {
    mbar_init(bars + 8 * s, 1);
    mbar_init(bars + 8 * (S + s), uint32_t(consumer_warps));
  }
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// The producer's step before loading chunk c into stage c % S (S a power of two): waits until the consumers released
// chunk c - S, arms full[s] for `bytes`, and returns full[s].
__device__ __forceinline__ uint32_t ring_acquire(uint32_t bars, int S, int c, uint32_t bytes) {
  const int s = c & (S - 1);
  mbar_wait(bars + 8 * (S + s), ((c / S) & 1) ^ 1);
  mbar_expect_tx(bars + 8 * s, bytes);
  return bars + 8 * s;
}
// TMA: the box of `map` at coordinates (c0 innermost, c1) into shared memory at dst, completing bytes on bar.
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}],"
               " [%4];\n" :: "r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar) : "memory");
}
// Thread-block cluster barrier: every (non-exited) thread of the cluster arrives, shared-memory writes before it are
// visible to the cluster's reads after it.
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}
// 16 bytes at shared::cta address addr of the cluster's CTA `rank` (distributed shared memory).
__device__ __forceinline__ float4 cluster_ld4(uint32_t addr, uint32_t rank) {
  uint32_t ra;
  float4 v;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(ra) : "r"(addr), "r"(rank));
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(ra) : "memory");
  return v;
}
// wgmma shared-memory matrix descriptor of a K-major tile with 128-byte rows in the 128-byte swizzle: start address
// (moved by 32 bytes per k16 step inside the row), stride byte offset 1024 (next 8 rows), leading offset unused (1).
__device__ __forceinline__ uint64_t desc_sw128(uint32_t addr) {
  return uint64_t((addr & 0x3ffffu) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}

// cuTensorMapEncodeTiled from the driver through cudart (the extension links no libcuda); null when unavailable.
using TcEncodeFn = PFN_cuTensorMapEncodeTiled_v12000;
inline TcEncodeFn tc_encoder() {
  static const TcEncodeFn fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return TcEncodeFn(nullptr);
    }
    return reinterpret_cast<TcEncodeFn>(f);
  }();
  return fn;
}

// 1 when the current device is a Hopper (sm_90) and TMA maps can be made, cached per device.
inline int tc_device_ok() {
  static int cache[64];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) { cudaGetLastError(); return 0; }
  if (dev < 0 || dev >= 64) return 0;
  if (cache[dev] == 0) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    cache[dev] = major == 9 && minor == 0 && tc_encoder() != nullptr ? 1 : 2;
  }
  return cache[dev] == 1;
}

// A row-major [rows, cols] matrix (row stride `stride` bytes, 16-byte multiple; base 16-byte aligned) as a TMA map
// with boxes of box_c columns x box_r rows; boxes past the edge read zeros. what: the caller's name for the error.
inline CUtensorMap tma_map_2d(const void* base, CUtensorMapDataType dt, int64_t cols, int64_t rows, int64_t stride,
                              int box_c, int box_r, CUtensorMapSwizzle swizzle, const char* what) {
  CUtensorMap m{};
  const cuuint64_t dims[2] = {cuuint64_t(cols), cuuint64_t(rows)}, strides[1] = {cuuint64_t(stride)};
  const cuuint32_t box[2] = {cuuint32_t(box_c), cuuint32_t(box_r)}, unit[2] = {1, 1};
  const CUresult r = tc_encoder()(&m, dt, 2, const_cast<void*>(base), dims, strides, box, unit,
                                  CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw std::runtime_error(std::string(what) + ": cuTensorMapEncodeTiled failed (" + std::to_string(int(r)) + ")");
  return m;
}

// Split-K epilogue of the register-A GEMMs (gemm_rs.cu, gemm_w4a8.cu) inside the cluster of the SP CTAs of one output
// tile (split = cluster rank = blockIdx.y): each CTA's CONS consumer threads have stored their partial [BN x rows]
// [ROWS + 4 weight rows] float at shared address `part` (the +4 makes a warp's stores hit 32 banks); CTA r then sums
// weight rows [r, r + 1) * ROWS / SP of all SP partials in split order 0, 1, ... (distributed shared memory;
// deterministic), times *gscale (if given), plus bias[n] (OT, if given), and stores OT into out [M, N]. Why: the
// [S, M, N] float32 round trip through a workspace plus a reduce kernel took 2.0 us of a 14.6 us call at 4096^2
// M = 64 and 4.8 of 27.3 at M = 256 (gemm_rs, H200, 2026-11-27, torch.profiler).
template <typename OT, int BN, int SP, int ROWS, int CONS>
__device__ __forceinline__ void cluster_reduce_tile(uint32_t part, int m0, int n0, int tid, int M, int N,
                                                    const float* gscale, const void* bias_, void* out_) {
  constexpr int P = ROWS + 4, NQ = ROWS / SP / 4, IT = BN * NQ / CONS;  // 4-row quads a CTA's slice; items a thread
  static_assert(IT * CONS == BN * NQ, "the slice splits evenly over the consumers");
  cluster_sync();  // every partial is written
  const int lo = int(blockIdx.y) * (ROWS / SP);
  float4 v[IT][SP];
#pragma unroll
  for (int i = 0; i < IT; ++i) {  // all loads first: IT * SP in flight
    const int it = tid + i * CONS;
    const uint32_t a = part + uint32_t((it / NQ) * P + lo + 4 * (it % NQ)) * 4;
#pragma unroll
    for (int sp = 0; sp < SP; ++sp) v[i][sp] = cluster_ld4(a, sp);
  }
  const float gs = gscale ? __ldg(gscale) : 1.f;
  const OT* bias = reinterpret_cast<const OT*>(bias_);
  OT* out = reinterpret_cast<OT*>(out_);
#pragma unroll
  for (int i = 0; i < IT; ++i) {
    const int it = tid + i * CONS, m = m0 + it / NQ, n = n0 + lo + 4 * (it % NQ);
    float4 t = v[i][0];
#pragma unroll
    for (int sp = 1; sp < SP; ++sp)
      t = make_float4(t.x + v[i][sp].x, t.y + v[i][sp].y, t.z + v[i][sp].z, t.w + v[i][sp].w);
    const float f[4] = {t.x, t.y, t.z, t.w};
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      if (m >= M || n + e >= N) continue;
      float y = f[e];
      if (gscale) y = y * gs;
      if (bias) y = y + to_f32(bias[n + e]);
      out[int64_t(m) * N + n + e] = from_f32<OT>(y);
    }
  }
  cluster_sync();  // no CTA leaves while another still reads its partial
}

// The launch configuration of a grid of `threads`-thread CTAs with smem bytes each; cluster_y > 0: clusters of 1 x
// cluster_y CTAs; pdl: programmatic stream serialization (the kernel may start before the previous one in
// the stream ends, and calls pdl_wait before it reads that one's results). at: 2 attributes, which must outlive the
// launch.
inline cudaLaunchConfig_t cluster_config(dim3 grid, int threads, int smem, cudaStream_t st, int cluster_y,
                                         cudaLaunchAttribute* at, bool pdl = false) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = dim3(unsigned(threads));
  cfg.dynamicSmemBytes = size_t(smem);
  cfg.stream = st;
  at[0] = {};
  at[1] = {};
  unsigned n = 0;
  if (cluster_y > 0) {
    at[n].id = cudaLaunchAttributeClusterDimension;
    at[n].val.clusterDim.x = 1; at[n].val.clusterDim.y = unsigned(cluster_y); at[n++].val.clusterDim.z = 1;
  }
  if (pdl) {
    at[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  cfg.attrs = at;
  cfg.numAttrs = n;
  return cfg;
}

// How many S-CTA clusters of kernel fn (`threads` threads, smem bytes each) the current device holds at once; 0 where
// it cannot launch them. Sets fn's dynamic shared memory limit.
template <class Kernel> int resident_clusters(Kernel fn, int threads, int smem, int S) {
  cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  cudaLaunchAttribute at[2];
  const cudaLaunchConfig_t cfg = cluster_config(dim3(1, unsigned(S)), threads, smem, nullptr, S, at);
  int n = 0;
  if (cudaOccupancyMaxActiveClusters(&n, reinterpret_cast<const void*>(fn), &cfg) != cudaSuccess) {
    cudaGetLastError();
    n = 0;
  }
  return n;
}

// Whether `tiles` clusters of S CTAs (S = 2, 4 or 8) are resident at once on the current device: resident(S), the
// device's count of such clusters (resident_clusters), is asked once per device and S, cached in the caller's
// cache[device][log2 S] (+ 1; 0: not asked; common.cuh per_device's device index). The split-K planners of
// gemm_rs.cu and gemm_w4a8.cu use it.
template <class F> bool clusters_fit(std::atomic<int> (&cache)[kMaxDevices][4], int S, int64_t tiles, F resident) {
  std::atomic<int>& f = cache[current_device()][S == 2 ? 1 : S == 4 ? 2 : 3];
  int v = f.load(std::memory_order_acquire);
  if (v == 0) {  // two threads may both ask: the same count, stored twice
    v = resident(S) + 1;
    f.store(v, std::memory_order_release);
  }
  return v - 1 >= tiles;
}

}  // namespace fourbit_cuda
