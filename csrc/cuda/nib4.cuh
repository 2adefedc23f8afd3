// Device helpers shared by the 4-bit mma.sync kernels (gemv.cu's decode GEMV and gemm_sm.cu's small-M GEMM): scale
// loads and decodes by scale kind, and the per-lane byte-pair table both decode through.
#pragma once
#include <type_traits>

#include "common.cuh"

namespace fourbit_cuda {

// A raw scale (float32 bits, or the E4M3 / E8M0 byte) -> float32.
template <int SK> __device__ __forceinline__ float dec_scale(uint32_t raw) {
  if (SK == SK_F32) return __uint_as_float(raw);
  return SK == SK_E4M3 ? e4m3_to_f32(raw & 0xffu) : e8m0_to_f32(raw & 0xffu);
}
// A raw scale -> the XT pair (s, s) that the decode multiplies codes by, exact (as pack2 of dec_scale). E4M3 takes
// the hardware e4m3x2 -> f16x2 conversion (sm_89+): one instruction for ~10 of field logic and selects, which ran in
// every step (nvfp4 has two scales a run) and left nvfp4 the slowest format in both kernels. E8M0 into bf16 is bit
// assembly: 2^(b - 127) has bf16 exponent field b (b = 0: the subnormal 2^-127, 0x0040; b = 255: NaN).
template <typename XT, int SK> __device__ __forceinline__ uint32_t scale_pair(uint32_t raw) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  if (SK == SK_E4M3) {  // raw: the byte, so raw * 0x101 is the byte pair (b, b)
    uint32_t h2;
    asm("{\n .reg .b16 t;\n cvt.u16.u32 t, %1;\n cvt.rn.f16x2.e4m3x2 %0, t;\n}\n" : "=r"(h2) : "r"(raw * 0x101u));
    if (std::is_same<XT, __half>::value) return h2;
    const float f = __half2float(__ushort_as_half(uint16_t(h2 & 0xffffu)));  // e4m3 -> f16 -> f32 -> bf16: exact
    return pack2<XT>(f, f);
  }
#endif
  if (SK == SK_E8M0 && std::is_same<XT, __nv_bfloat16>::value)
    return raw == 255u ? 0x7fc07fc0u : raw == 0u ? 0x00400040u : raw * 0x00800080u;
  const float f = dec_scale<SK>(raw);
  return pack2<XT>(f, f);
}
// NS (2 or 4) E4M3 scale bytes (byte i of w: scale i) -> their XT pairs (s_i, s_i), exact as scale_pair: one e4m3x2 ->
// f16x2 conversion for two instead of one a scale (bf16 then goes through float32 as scale_pair does). Why: nvfp4's
// four scales a row and 64-K chunk took 16 of gemm_rs's ~125 SASS instructions a step as scale_pair calls; gemm_sm's
// two a run come as one 16-bit load (its numbers there).
template <typename XT, int NS> __device__ __forceinline__ void e4m3_pairs(uint32_t w, uint32_t (&sp)[NS]) {
  static_assert(NS == 2 || NS == 4, "two or four scales");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  uint32_t h[2] = {0u, 0u};  // f16x2 of bytes (0, 1) and (2, 3)
  if (NS == 4)
    asm("{\n .reg .b16 lo, hi;\n mov.b32 {lo, hi}, %2;\n cvt.rn.f16x2.e4m3x2 %0, lo;\n cvt.rn.f16x2.e4m3x2 %1, hi;\n}\n"
        : "=r"(h[0]), "=r"(h[1]) : "r"(w));
  else
    asm("{\n .reg .b16 lo;\n cvt.u16.u32 lo, %1;\n cvt.rn.f16x2.e4m3x2 %0, lo;\n}\n" : "=r"(h[0]) : "r"(w));
#pragma unroll
  for (int i = 0; i < NS; ++i) {
    const uint32_t v = (h[i >> 1] >> (16 * (i & 1))) & 0xffffu;  // f16 bits of scale i
    if (std::is_same<XT, __half>::value) {
      sp[i] = v * 0x10001u;
    } else {
      const float f = __half2float(__ushort_as_half(uint16_t(v)));
      sp[i] = pack2<XT>(f, f);
    }
  }
#else
#pragma unroll
  for (int i = 0; i < NS; ++i) sp[i] = scale_pair<XT, SK_E4M3>((w >> (8 * i)) & 0xffu);
#endif
}

// Two raw scales -> float32, exact (as dec_scale): the GEMV's M = 1 kernel applies its scales after the MMA. E4M3 takes
// one e4m3x2 -> f16x2 conversion for the pair; other kinds decode one by one (the GEMV reads E8M0 from a table).
template <int SK> __device__ __forceinline__ void scale_f32x2(uint32_t r0, uint32_t r1, float& f0, float& f1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  if (SK == SK_E4M3) {
    uint32_t h2;
    asm("{\n .reg .b16 t;\n cvt.u16.u32 t, %1;\n cvt.rn.f16x2.e4m3x2 %0, t;\n}\n" : "=r"(h2) : "r"(r0 | (r1 << 8)));
    f0 = __half2float(__ushort_as_half(uint16_t(h2 & 0xffffu)));
    f1 = __half2float(__ushort_as_half(uint16_t(h2 >> 16)));
    return;
  }
#endif
  f0 = dec_scale<SK>(r0);
  f1 = dec_scale<SK>(r1);
}

// Raw scale i of a [N, K/G] scale array of kind SK (read-only cache).
template <int SK> __device__ __forceinline__ uint32_t ld_scale(const void* s, int64_t i) {
  if (SK == SK_F32) return __ldg(reinterpret_cast<const uint32_t*>(s) + i);
  return __ldg(reinterpret_cast<const uint8_t*>(s) + i);
}

// Per-lane byte-pair tables, built by a block of T threads: word e * E + lane of tbl (E = 32: 32 KB) holds
// (lut[e & 15], lut[e >> 4]) as an XT pair, so a lane's lookup of byte e at ((e << 7) | lane << 2) hits its own bank.
// Thread i stores entry e = i & 255 as 16-byte runs (4 lanes' copies each), run ((i >> 8) + e) & 7, so the 8 threads
// of an STS.128 phase (8 consecutive e) write 8 distinct bank groups; the pair comes from two L1-cached lut loads (no
// staging barrier). A rolled loop: unrolled, ptxas spilled in two 16-warp GEMV instantiations. Why: ncu (H100,
// 8192^2 nf4 M=1) put 24% of the GEMV's warp stall samples and 17% of its instructions in the prologue when each
// thread stored 32 single words. The caller's barrier publishes the table. E = 64 spaces the entries 256 bytes
// apart (64 KB; words 32 .. 63 of an entry unused), so a lookup address is (e << 8) | lane << 2: one PRMT of the code
// byte next to the lane's byte (gemm_rs.cu).
template <typename XT, int T, int E = 32>
__device__ __forceinline__ void build_pair_table(uint32_t* tbl, const float* lut) {
  auto pair = [&](int e) {  // (lut[e & 15], lut[e >> 4]) as an XT pair
    const XT lo = from_f32<XT>(__ldg(lut + (e & 15))), hi = from_f32<XT>(__ldg(lut + (e >> 4)));
    return uint32_t(*reinterpret_cast<const uint16_t*>(&lo)) | (uint32_t(*reinterpret_cast<const uint16_t*>(&hi)) << 16);
  };
  uint32_t v = pair(threadIdx.x & 255);
#pragma unroll 1
  for (int i = threadIdx.x; i < 256 * 8; i += T) {
    const int e = i & 255, run = ((i >> 8) + e) & 7;
    if (T % 256) v = pair(e);  // 4-warp blocks: a thread's entries alternate
    *reinterpret_cast<uint4*>(tbl + e * E + run * 4) = make_uint4(v, v, v, v);
  }
}

// The 64 KB table of one-block-an-SM kernels (gemv.cu's W16 blocks, gemm_sm.cu's M <= 16 blocks of 14-16 warps):
// build_pair_table<XT, T, 64> at shared address kT64Base (64 KB-aligned), so byte bb of a code word looks up at
// kT64Base | byte << 8 | lane << 2, one PRMT of the word and lb = kT64Base | lane << 2 (t64_addr) where the 32 KB
// table takes a shift and a LOP3. The block's allocation runs to 128 KB, which two blocks an SM cannot have.
constexpr uint32_t kT64Base = 0x10000;
__device__ __forceinline__ uint32_t t64_addr(uint32_t word, uint32_t lb, int bb) {
  return __byte_perm(word, lb, 0x7604u | uint32_t(bb << 4));  // {lane << 2, byte bb, 0x01, 0}
}
// Stops the kernel unless its dynamic shared memory (at shared address sb32) covers the table and `below` bytes from
// sb32 end under it: a launch sized by anything but t64_smem_bytes never reads or writes outside its allocation.
__device__ __forceinline__ void t64_check(uint32_t sb32, uint32_t below) {
  uint32_t dsz;
  asm("mov.u32 %0, %%dynamic_smem_size;\n" : "=r"(dsz));
  if (sb32 + dsz < kT64Base + 0x10000u || sb32 + below > kT64Base) __trap();
}
// Shared-window bytes below kernel fn's dynamic block on this device (reserved bytes + fn's static shared memory), or
// -1 where the runtime cannot say.
template <class Kernel> int dyn_smem_base(Kernel fn) {
  cudaFuncAttributes fa{};
  int dev = 0, resv = 0;
  if (cudaFuncGetAttributes(&fa, fn) != cudaSuccess || cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&resv, cudaDevAttrReservedSharedMemoryPerBlock, dev) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return resv + int(fa.sharedSizeBytes);
}
// Dynamic shared memory bytes that reach the 64 KB table's end from a dynamic block at shared address `base`
// (dyn_smem_base; 1 KB where unknown).
inline int t64_smem_bytes(int base) { return int(kT64Base) + 0x10000 - (base < 0 ? 1024 : base); }

// Which (scale kind, G == 16, zeros) combinations the 4-bit kernels are instantiated for (gemv_nib4_kernel and
// gemm_sm_kernel; other GEMV arguments take gemv_mma_kernel).
inline bool nib4_fast(int qk, int sk, int64_t G, bool hz) {
  if (qk != QK_NIB4) return false;
  if (sk == SK_F32) return G != 16;
  if (sk == SK_E4M3) return !hz;
  return !hz && G != 16;
}

}  // namespace fourbit_cuda
