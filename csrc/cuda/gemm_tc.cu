// Mid-M linear on Hopper tensor cores (sm_90a): y[M, N] = x[M, K] @ dequant(W)^T (+ bias), fp32 accumulation,
// for 4-bit weights (every nib4 format) and bf16 / fp16 x. Warp-specialized, one CTA an SM:
//   - producer warpgroups (4 threads a weight row): copy the packed codes (cp.async, 8 bytes a thread a 64-K slab)
//     and, for the tiles without TMA (TcSmem::TMA), the x tile (BMM rows x 128 K) into a stage, then decode 16 codes
//     a slab each into the stage's weight tile (two 64-K slabs a stage) as x's dtype:
//     ((lut[c] - z) * s) in float32, rounded once (RNE), the Triton fused kernel's and the reference's operand;
//     nvfp4's global scale multiplies the float32 sum in the epilogue. The int4 tables decode without a lookup.
//   - consumer warpgroups (one per 64-row weight slab): per stage 8 wgmma m64nBMMk16 (A = the weight slab, B = the
//     x tile, both from shared memory), one group in flight, so the tensor core multiplies stage i while the
//     producers decode the next ones. With TMA (the 256-row tile; the 128-row tile for table decodes) the first
//     consumer thread loads each x tile by cp.async.bulk.tensor as soon as its stage is released.
// Why: the Triton fused kernel waits for each wgmma right after issuing it, because its weight operand is
// dequantized in the registers of the same warps (WARPGROUP.DEPBAR after every HGMMA), so decode and MMA serialize
// inside a program (8192^2 M = 64: 50-67 us against an 11 us weight stream and 12 us of MMA).
//
// Status (H100 80GB HBM3, 2026-11-27, tenth session; bench/gpu_tc.py --quick, CUDA graphs, us, tc vs the Triton
// fused kernel, int4 / nf4 / nvfp4 / mxfp4): correct (tests/test_cuda_gemm_tc.py).
//   8192^2 M = 32:  41.4 / 47.5 / 47.4 / 46.9 vs 41.4 / 55.0 / 51.0 / 43.3
//          M = 64:  52.4 / 53.3 / 53.6 / 52.7 vs 49.9 / 65.9 / 58.6 / 51.4
//          M = 128: 56.7 / 62.4 / 64.0 / 62.8 vs 73.0 / 75.1 / 74.9 / 70.1
//          M = 256: 110.3 / 97.0 / 104.1 / 96.7 vs 118.2 / 129.9 / 120.2 / 112.3 (bf16 cuBLAS 58.5); 64-K stages
//                   at BMM = 256 (eleventh session): 88.6-89.4 / 96.1-97.1 / 98.8-99.2 / 96.0-98.2; with x rows
//                   past M zero-filled (below) 102.3 / 104.6 / 106.7 / 105.6 on another machine, and M = 129-224
//                   (partial tiles) the same, where they had cost up to 2.2x (M = 129 220.5)
//   4096^2 M = 128: 21.8 / 22.8 / 24.1 / 22.9 vs 24.1 / 24.9 / 24.8 / 23.1; M = 256 35.9 / 35.0 / 36.4 / 35.0 vs
//          39.2 / 40.4 / 40.0 / 37.0.
//   Twelfth session (H100 80GB HBM3, 2026-11-27, bench/gpu_tc.py --ms, A/B in one run each; TcSmem has the numbers):
//   dead rows of partial tiles read valid rows (no zero-fill), every producer copies x, then x by TMA. 8192^2
//   M = 256 now 84.2 / 83.6 / 82.7 / 83.1 (bf16 cuBLAS 57.8), M = 128 59.6 (copies: 55.9) / 60.9 / 61.7 / 60.7;
//   4096^2 M = 256 32.0 / 31.1 / 32.1 / 31.7 (bf16 19.2); M = 129-255 as fast as M = 256.
// ops/cuda.py routes by format, M and N (TC_WINDOWS, from a bench/gpu_tc.py run over its five model shapes);
// FOURBIT_TC_MAX_M sets one window for every format.
// Steps, each measured: no-swizzle layouts -> 128-byte swizzle (time per stage grew with M: wgmma at ~20% of
// peak); one producer warpgroup at ~10 cycles per instruction, 23% of its stall samples instruction-cache misses
// (a decode loop unrolled 8 times) -> 4 producer warpgroups, 16 codes a thread; 1024 single-thread mbarrier arrivals
// a stage -> one per warp; a thread-dependent slab index in the wgmma descriptors made ptxas serialize every wgmma
// (C7515) -> a template constant; a scale ring shifted each step waited on the load just issued -> static ring
// indices; the x tile copied S - 2 stages ahead chained each step to the previous one -> S / 2 (10-15%).
// Tenth session (A/B in one run each, same card): the scale index by a multiply-high and a shift instead of a
// division (divider; ~28 fewer SASS instructions a producer step): 8192^2 M = 128 77-81 -> 69-73 us, M = 256
// 153-157 -> 133-140, M <= 64 0-3%; then 128 K a stage (two swizzle slabs, S = 4, D = 4: half the barrier steps,
// proxy fences and spin loops per code): M = 32 51-54 -> 44-52, M = 64 59-61 -> 56-58, 4096^2 M = 32 / 64 8% faster,
// M = 256 the same; then the int4 magic in a register (extract-and-or in one LOP3): int4 M = 32 / 64 3-4% faster;
// then x one stage ahead, not two (above: M = 128 12-15% faster) and BMM = 256 for M > 128 (each weight row decoded
// once for 256 x rows, one wave of CTAs at 8192^2: M = 256 130-144 -> 97-110 us).
// Tried and dropped (same card and day, A/B in one run): loader warps doing every global access, so the decoders'
// proxy fence (MEMBAR.ALL.CTA + FENCE.VIEW.ASYNC.S in the SASS) never waits for a load (branch gemm-tc-loader-split:
// 8192^2 M = 32 65 vs 58 us, M = 64 62 vs 70; by its protocol, its scale publication re-chains the steps); the
// scale loads moved after the fence (no change); a 10 ms suspend hint on every mbarrier try_wait (no change); the x
// tile by TMA (one cp.async.bulk.tensor a slab from thread 0, 128-byte swizzle, correct: 31 tests passed): 20-30%
// slower at every M (8192^2 M = 32 int4 54.2 vs 42.8, M = 256 165 vs 134).
// What bounded it before the last two steps (ncu, 8192^2 int4 M = 256 with the divider, 64-K stages, BMM = 128):
// issue slots 41% busy, 0.63 eligible warps a scheduler, 6.5 cycles between a warp's instructions; the consumer
// warps wait on the full barriers (17% of the stall samples on one spin loop), the producers on scoreboards and the
// empty barriers; membar stalls are <1%. The producers' dependent instruction stream (~170 SASS instructions a 64-K
// step, ~80 of them the float32 decode) sets the stage time. Not profiled since. Every CTA re-reads its x rows from
// L2 (ROWS = 64: 512 MB of L2 reads at 8192^2 M = 256, against 32 MB of codes).
//
// Pipeline: S stages (decoded weight tile + x tile), each guarded by two mbarriers: full (each x-copying thread's
// copies landing, through cp.async.mbarrier.arrive, and one arrival per producer warp after its decode stores and a
// proxy fence, so the async proxy of wgmma sees them) and empty (one arrival per consumer warp once the stage's wgmma
// group has completed). The packed codes go through a separate ring of D raw slots, copied D - 1 stages ahead
// (cp.async groups, waited per thread: a thread decodes only the row it copied); the x tile is copied S / 2 stages
// ahead, when its stage is free. Scales and zero points are loaded with plain loads when their codes are copied,
// into a register ring of D entries (the producer loop is unrolled by D so the ring index is static).
//
// Shared-memory layouts: per stage two 64-K slabs of the weight tile [ROWS rows x 64 K] and of the x tile [BMM rows
// x 64 K] in x's dtype, K-major, 128 bytes a row, 16-byte chunk kc of row r at r * 128 + ((kc ^ (r & 7)) << 4): the
// 128-byte swizzle wgmma reads without bank conflicts (descriptor: stride 1024 bytes per 8 rows, start address + 32
// bytes per k16 step); raw codes: row r at r * 32 bytes of a slab, thread (r, q) reading its 8 bytes at r * 32 + 8 q
// (a warp reads 256 contiguous bytes).
// Split-K over blockIdx.z into a float32 workspace [S, M, N] (deterministic fixed-order reduce, as the GEMV).
#include <algorithm>
#include <stdexcept>
#include <type_traits>
#include <string>

#include "api.h"
#include "common.cuh"
#include "hopper.cuh"
#include "wgmma.cuh"

namespace fourbit_cuda {
namespace {

constexpr int kSw = 64;   // K per swizzle slab (128 bytes of x's dtype: one 128-byte swizzle row)
constexpr int kTcK = 2 * kSw;  // K granularity of the path (K % 128 == 0): the largest stage

struct TcParams {
  const void* x; const uint8_t* q; const void* scales; const uint8_t* zeros; const float* gscale;
  const float* lut; const void* bias; void* out; float* ws;
  int M, N, K, G, chunks_per_split;
  uint32_t magic;  // 0x4b000000 from the host: a register operand, so extract-and-or is one LOP3 (an immediate
                   // 0xf and an immediate magic take two)
  uint32_t gmul; int gshr;  // k / G = umulhi(k, gmul) >> gshr for 0 <= k < 2^31 (divider)
};

// How a code becomes its LUT value: any table (a shared-memory lookup) or, for the int4 tables lut[c] = c (UINT) and
// c - 8 (SINT), 2^23 + c by bits with the 2^23 (and the 8) subtracted with the zero point: exact, no lookup.
enum TcCodes : int { TC_LUT = 0, TC_UINT = 1, TC_SINT = 2 };


// Per M tile (BMM rows of x): ROWS weight rows (one consumer warpgroup per 64-row slab; 4 producer threads a row, 16
// codes each), S stages of decoded weights + x, NS 64-K slabs each, and a ring of D raw-code slots (producer-private:
// the code copies run D - 1 stages ahead, x is copied LX stages ahead); one CTA an SM. BMM = 128 and 256 take 64 rows,
// so that their 64 / 128 accumulator registers per consumer thread fit the 384-thread CTA's register budget (168).
// BMM = 256 (M > 128): one CTA per 64 weight rows for all 256 x rows, so each weight row is decoded once per 256 x
// rows (BMM = 128 decoded it twice for M = 256, over 1.9 waves of CTAs). BMM = 256 stages hold 64 K (40 KB: four
// fit; two 80 KB 128-K stages had to copy x at the step that uses it). Measured (H100 80GB HBM3, 2026-11-27, eleventh
// session, bench/gpu_tc.py --ms 256, A/B in one run, us, int4 / nf4 / nvfp4 / mxfp4): 128-K S = 2 LX = 0 -> 64-K
// S = 4 LX = 1: 8192^2 110.6 / 97.2 / 103.4 / 96.3 -> 88.6 / 97.1 / 99.2 / 98.2, 28672x8192 428.9 / 380.5 / 406.4 /
// 378.0 -> 359.5 / 378.1 / 385.1 / 376.2, 4096x14336 105.6 / 95.2 / 100.8 / 93.6 -> 84.6 / 90.1 / 92.2 / 90.1. A
// longer x lookahead lost (next run, 8192^2): S = 4 LX = 2 104-111, S = 5 LX = 2 102-104, S = 5 LX = 3 110-116 against
// 89-99 (so x latency is not the bound), and so did 64-K stages at BMM = 128 (S = 8: 8192^2 M = 128 70-75 vs 57-64).
template <int BMM> struct TcSmem {
  static_assert(BMM == 32 || BMM == 64 || BMM == 128 || BMM == 256, "x rows per CTA");
  static constexpr int ROWS = BMM >= 128 ? 64 : 128, PROD = 4 * ROWS, THREADS = PROD + 2 * ROWS;
  static constexpr int NS = BMM == 256 ? 1 : 2, TK = kSw * NS;  // slabs (and K) per stage
  // Producer threads that copy x (XP 16-byte pieces each): all of them (the table decodes at BMM <= 64: the first
  // 128). With the first 128 copying, those 4 warps were the slowest (H100 80GB HBM3, 2026-11-27, A/B in one run,
  // us, int4 / nf4 / nvfp4 / mxfp4): M = 256 8192^2 92.5 / 98.1 / 99.5 / 97.8 -> 86.4 / 89.6 / 91.8 / 89.2, 28672x8192
  // 358.9 / 379.3 / 385.5 / 378.1 -> 340.5 / 347.0 / 354.6 / 347.6; M = 128 28672x8192 215.6 / 238.7 / 244.0 / 240.0
  // -> 209.5 / 231.9 / 237.6 / 234.2; int4 M = 64 8192^2 52.8 -> 49.0, 28672x8192 174.3 -> 162.1. The table decodes at
  // M = 17-64 were 1-3% slower with all copying (28672x8192 M = 64 nf4 181.1 -> 184.0, M = 17 166.4 -> 170.9).
  template <int CODES> static constexpr int XTH = BMM >= 128 || CODES != TC_LUT ? PROD : 128;
  // The x tile by TMA (BMM = 256, and BMM = 128 for the table decodes; one consumer warpgroup there): issued by the
  // first consumer thread as soon as the consumers release a stage (S - 1 chunks ahead), so no producer copies x or
  // waits for a stage to copy it into (producer loop, bf16 int4 256-row tile: 602 -> 470 SASS instructions a 4-step
  // unroll). Measured (H100 80GB HBM3, 2026-11-27, A/B in one run, us, int4 / nf4 / nvfp4 / mxfp4, against the x
  // copies spread over all producers): M = 256 8192^2 87.9 / 89.2 / 91.3 / 88.7 -> 84.2 / 83.6 / 82.7 / 83.1,
  // 28672x8192 339.3 / 348.1 / 354.2 / 347.5 -> 327.0 / 328.6 / 323.8 / 317.8, 14336x4096 92.6 / 96.1 / 97.9 / 96.0 ->
  // 90.0 / 90.6 / 89.9 / 89.0; M = 128 the table decodes 1-4% faster (28672x8192 235.9 / 241.5 / 237.5 -> 230.8 /
  // 234.0 / 228.8) but int4 5-7% slower (8192^2 55.9 -> 59.6, 28672x8192 214.1 -> 227.8), so int4 keeps the copies
  // there. (An earlier try, x by TMA from a producer thread that waited for the stage, was 20-30% slower.)
  template <int CODES> static constexpr bool TMA = BMM == 256 || (BMM == 128 && CODES == TC_LUT);
  static constexpr int S = 4, D = 4, LX = 1;  // any S works (ring index c % S); LX: see the kernel
  static_assert(LX <= S - 2, "x(c + LX) waits for the consumers past full(c + LX - S + 1): LX > S - 2 deadlocks");
  static constexpr int W = ROWS * TK * 2, X = BMM * TK * 2, RAW = ROWS * TK / 2;
  static constexpr int WSL = ROWS * kSw * 2, XSL = BMM * kSw * 2, RSL = ROWS * kSw / 2;  // one slab of each
  static constexpr int STAGE = W + X;
  static constexpr int LUT = S * STAGE + D * RAW;  // 16 floats, 64-byte aligned (lookup address = LUT | code << 2)
  static constexpr int BAR = LUT + 64;              // full[s] at BAR + 8 s, empty[s] at BAR + 8 (S + s)
  static constexpr int BYTES = BAR + 16 * S + 1024; // + the 1024-byte alignment of the swizzled tiles
  static_assert(BYTES <= 232448, "more than the 227 KB of shared memory a Hopper CTA may use");
  static_assert(BMM * (ROWS + 4) * 4 <= S * STAGE, "the epilogue's float tile reuses the stage buffers");
};

__device__ __forceinline__ void cp_async8(uint32_t dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" :: "r"(dst), "l"(src) : "memory");
}
// One arrival on the mbarrier once all of this thread's earlier cp.async copies have landed (counted in its init).
__device__ __forceinline__ void cp_arrive_noinc(uint32_t bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" :: "r"(bar) : "memory");
}
// Byte offset of 16-byte chunk kc (0..7) of row r in a 128-byte-swizzled tile (1024-byte aligned).
__device__ __forceinline__ uint32_t sw128(int r, int kc) { return uint32_t(r * 128 + ((kc ^ (r & 7)) << 4)); }

// The nibble at bit p of w: its LUT value (TC_LUT: base is the table's shared address, 64-byte aligned) or 2^23 + code
// (the int tables: base is 0x4b000000, kept in a register so that extract-and-or is one LOP3).
template <int CODES> __device__ __forceinline__ float tc_code(uint32_t w, int p, uint32_t base) {
  if (CODES != TC_LUT) return __uint_as_float(((p ? w >> p : w) & 0xfu) | base);
  const uint32_t a = base | ((p >= 2 ? w >> (p - 2) : w << (2 - p)) & 0x3cu);
  float v;
  asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(v) : "r"(a));
  return v;
}

template <int SK> __device__ __forceinline__ float tc_scale(uint32_t raw) {
  if (SK == SK_F32) return __uint_as_float(raw);
  return SK == SK_E4M3 ? e4m3_to_f32(raw & 0xffu) : e8m0_to_f32(raw & 0xffu);
}

template <typename XT, int SK, bool HZ, int CODES, int BMM>
__global__ void __launch_bounds__(TcSmem<BMM>::THREADS, 1)
gemm_tc_kernel(TcParams p, const __grid_constant__ CUtensorMap xmap) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  pdl_trigger();  // the split-K reduce after it may launch now (it waits for this grid: common.cuh)
  using L = TcSmem<BMM>;
  // stages; raw slots; raw and x copy lookahead. x(c + LX) goes into the stage of chunk c + LX - S, which the
  // consumers release only after full(c + LX - S + 1), so the x copiers' step c waits for the CTA's step
  // c + LX - S + 1 and a barrier round trip: LX = S - 2 chained each step to the previous one. Measured (H100,
  // 2026-11-27, gpu_tc.py --quick, A/B in one run each): 64-K stages, S = 8, LX 6 -> 4: 8192^2 M = 32 57-59 -> 51-55
  // us, M = 64 66-71 -> 60-62, M = 256 176-182 -> 151-157 (LX 3 and 5 the same as 4); 128-K stages, S = 4, LX 2 -> 1:
  // 8192^2 M = 32 42.8-51.2 -> 41.4-47.5, M = 64 55.6-57.3 -> 52.4-53.6, M = 128 67.0-73.6 -> 56.7-64.0. LX > S - 2
  // deadlocks: x(c + LX) would wait for full(c), which this step's own decode completes.
  constexpr int S = L::S, D = L::D, LR = D - 1, LX = L::LX;
  constexpr int ROWS = L::ROWS, PROD = L::PROD;
  constexpr int XTH = L::template XTH<CODES>;
  constexpr bool TMA = L::template TMA<CODES>;
  extern __shared__ __align__(1024) uint8_t tc_dyn[];
  uint8_t* base = tc_dyn + ((1024 - (smem_u32(tc_dyn) & 1023)) & 1023);
  const uint32_t sbase = smem_u32(base), bars = sbase + L::BAR, lutb = sbase + L::LUT;
  const int tid = threadIdx.x;
  const int M = p.M, N = p.N, K = p.K, G = p.G;
  const int n0 = blockIdx.x * ROWS, m0 = blockIdx.y * BMM;
  const int c_lo = blockIdx.z * p.chunks_per_split;
  constexpr int NS = L::NS, TK = L::TK;
  const int nch = min(K / TK, c_lo + p.chunks_per_split) - c_lo;
  if (tid < 16) reinterpret_cast<float*>(base + L::LUT)[tid] = p.lut[tid];
  if (tid == 0) {
    for (int s = 0; s < S; ++s) {
      // x: XTH copiers' cp.async arrivals, or the TMA issuer's one (with the tile's bytes); one per producer warp
      mbar_init(bars + 8 * s, (TMA ? 1 : XTH) + PROD / 32);
      mbar_init(bars + 8 * (S + s), 2 * ROWS / 32);    // one per consumer warp
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (tid < PROD) {
    // ---- producer: 16 codes (elements 16 q .. 16 q + 15 of the stage) of weight row r; pieces of the x tile ----
    const int r = tid >> 2, q = tid & 3;
    const int n = min(n0 + r, N - 1);  // rows past N decode row N - 1; their outputs are never stored
    const uint8_t* qsrc = p.q + int64_t(n) * (K / 2) + 8 * q + int64_t(c_lo) * (TK / 2);  // slab h: + 32 h
    // the thread's 16 codes lie in one group (G >= 16): scale / zero index advances by 64 / G (or 1 / (G / 64))
    const int64_t j0 = int64_t(n) * (K / G);
    const int kq = c_lo * TK + 16 * q;
    const XT* x = reinterpret_cast<const XT*>(p.x);
    constexpr int XP = BMM * 8 * NS / XTH;  // x pieces (slab, row, 16-byte chunk) per copying thread
    const XT* xsrc[XP];
    uint32_t xdst[XP];
    // Tiles that copy x here (not TMA, which zero-fills them): rows past M (a partial tile) copy valid rows of this
    // tile, m0 + (xr & (pw - 1)) for the largest power of two pw <= M - m0; their outputs are never stored.
    // Clamping them all to row M - 1 made a partial tile 1.5-4x slower than a full one, every CTA's copies of one
    // line queueing at one L2 slice (H100, 8192^2 M = 129 220 us, M = 256 91; 4096^2 M = 320 141, M = 512 50).
    // Zero-filling them (cp.async with src_size 0) fixed that too, but full tiles ran 8-10% slower with it, also with
    // a separate plain-copy loop for full tiles (same card: 14336x4096 M = 256 int4 108.1 against 97.7 us; the cause
    // was not found). This keeps the main loop as it was: only the setup differs. Measured (same card, 2026-11-27,
    // one run, int4 us): 8192^2 M = 129 / 256 zero-fill 99.2 / 102.7 -> 87.0 / 92.5, 14336x4096 104.3 / 108.7 ->
    // 93.5 / 98.6 (nf4 / nvfp4 / mxfp4 alike).
    const int pw1 = (1 << (31 - __clz(min(M - m0, BMM)))) - 1;
#pragma unroll
    for (int i = 0; i < XP; ++i) {
      const int piece = (tid & (XTH - 1)) + XTH * i, h = piece / (BMM * 8), xr = (piece >> 3) % BMM;
      const int kc = piece & 7, mr = m0 + (m0 + xr < M ? xr : xr & pw1);
      xsrc[i] = x + int64_t(mr) * K + int64_t(c_lo) * TK + h * kSw + kc * 8;
      xdst[i] = sbase + L::W + h * L::XSL + sw128(xr, kc);
    }
    const bool xon = tid < XTH;
    const uint32_t raw0 = sbase + S * L::STAGE + r * 32 + q * 8;
    // scale / zero ring: chunk c's slab h at index [c % D][h] (static: the loop is unrolled by D)
    uint32_t rs[D][NS], rz[D][NS];
    auto issue_raw = [&](int c, uint32_t* sraw, uint32_t* zraw) {  // codes (cp.async) and scales of chunk c
#pragma unroll
      for (int h = 0; h < NS; ++h) {
        cp_async8(raw0 + (c & (D - 1)) * L::RAW + h * L::RSL, qsrc + int64_t(c) * (TK / 2) + h * (kSw / 2));
        const int64_t j = j0 + (__umulhi(uint32_t(kq + c * TK + h * kSw), p.gmul) >> p.gshr);
        if (SK == SK_F32) sraw[h] = __ldg(reinterpret_cast<const uint32_t*>(p.scales) + j);
        else sraw[h] = __ldg(reinterpret_cast<const uint8_t*>(p.scales) + j);
        if (HZ) zraw[h] = __ldg(p.zeros + j);
      }
    };
    auto issue_x = [&](int c) {  // x tile of chunk c into its stage, once the consumers released it (the first
      const int s = int(unsigned(c) % S);  // XTH threads, each with one full arrival when its copies land)
      if (TMA || !xon) return;
      mbar_wait(bars + 8 * (S + s), ((unsigned(c) / S) & 1) ^ 1);
#pragma unroll
      for (int i = 0; i < XP; ++i) cp_async16(xdst[i] + s * L::STAGE, xsrc[i] + int64_t(c) * TK);
      cp_arrive_noinc(bars + 8 * s);
    };
    // Step g (g = -LR .. nch - 1) copies x(g + LX) and raw(g + LR) and commits one cp.async group; waiting until LR
    // groups are pending then completes raw(g) (x is waited for by the consumers, through the full barrier). A scale
    // loaded at step g is first read at step g + LR: a register ring shifted every step made each step wait for the
    // load it had just issued (8192^2 M = 32: ~1600 cycles a step, every format alike).
#pragma unroll
    for (int g = -LR; g < 0; ++g) {
      if (g + LX >= 0 && g + LX < nch) issue_x(g + LX);
      if (g + LR < nch) issue_raw(g + LR, rs[g + LR], rz[g + LR]);
      cp_commit();
    }
    constexpr float kBias = CODES == TC_UINT ? 8388608.f : CODES == TC_SINT ? 8388616.f : 0.f;
    constexpr bool kSub = HZ || CODES != TC_LUT;
    const uint32_t cbase = CODES == TC_LUT ? lutb : p.magic;
    for (int c0 = 0; c0 < nch; c0 += D) {
#pragma unroll
      for (int u = 0; u < D; ++u) {
        const int c = c0 + u;
        if (c >= nch) break;
        if (c + LX < nch) issue_x(c + LX);
        if (c + LR < nch) issue_raw(c + LR, rs[(u + LR) % D], rz[(u + LR) % D]);
        cp_commit();
        cp_wait<LR>();
        const int s = int(unsigned(c) % S);
        mbar_wait(bars + 8 * (S + s), ((unsigned(c) / S) & 1) ^ 1);  // the consumers are done with this stage's last chunk
#pragma unroll
        for (int sl = 0; sl < NS; ++sl) {  // slab sl: elements 64 sl + 16 q .. + 15 of the stage
          uint32_t w0, w1;
          asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];\n" : "=r"(w0), "=r"(w1)
                       : "r"(raw0 + (c & (D - 1)) * L::RAW + sl * L::RSL) : "memory");
          const float scale = tc_scale<SK>(rs[u][sl]);
          const float off = kBias + (HZ ? float(rz[u][sl] & 0xffu) : 0.f);  // lost by the code value before the scale
#pragma unroll
          for (int h = 0; h < 2; ++h) {  // word h = elements 16 q + 8 h .. + 7 = 16-byte chunk 2 q + h of row r
            const uint32_t wd = h ? w1 : w0;
            uint32_t o[4];
#pragma unroll
            for (int b = 0; b < 4; ++b) {
              float lo = tc_code<CODES>(wd, 8 * b, cbase), hi = tc_code<CODES>(wd, 8 * b + 4, cbase);
              if (kSub) { lo = __fsub_rn(lo, off); hi = __fsub_rn(hi, off); }
              o[b] = pack2<XT>(__fmul_rn(lo, scale), __fmul_rn(hi, scale));
            }
            const uint32_t dst = sbase + s * L::STAGE + sl * L::WSL + sw128(r, 2 * q + h);
            asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};\n" :: "r"(dst), "r"(o[0]), "r"(o[1]), "r"(o[2]),
                         "r"(o[3]) : "memory");
          }
        }
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // generic-proxy writes -> wgmma's reads
        __syncwarp();
        if ((tid & 31) == 0) mbar_arrive(bars + 8 * s);  // one arrival per warp (1024 single arrivals cost ~2x)
      }
    }
    cp_wait<0>();
  } else {
    // ---- consumers: warpgroup k multiplies weight slab k (64 rows) by the x tile (BMM rows) ----
    constexpr int R = BMM / 2;  // accumulator registers
    const int k = (tid - PROD) >> 7;
    float acc[R];
#pragma unroll
    for (int i = 0; i < R; ++i) acc[i] = 0.f;
    // The slab index is a template constant so the descriptors are warp-uniform: computed from the thread index,
    // ptxas serialized every wgmma (C7515, a wait after each HGMMA).
    const bool tma_issuer = TMA && tid == PROD;
    auto issue_tma = [&](int c) {  // x of chunk c: NS boxes of 64 K x BMM rows (rows past M arrive as zeros)
      const int s = int(unsigned(c) % S);
      const uint32_t bar = bars + 8 * s;
      mbar_expect_tx(bar, L::X);
#pragma unroll
      for (int h = 0; h < NS; ++h)
        tma_load_2d(sbase + s * L::STAGE + L::W + h * L::XSL, &xmap, (c_lo + c) * TK + h * kSw, m0, bar);
    };
    if (tma_issuer)
      for (int c = 0; c < min(S, nch); ++c) issue_tma(c);  // every stage starts free
    if constexpr (TMA) __syncwarp();
    auto mainloop = [&](auto ks) {
      constexpr int KS = decltype(ks)::value;
      for (int c = 0; c < nch; ++c) {
        const int s = int(unsigned(c) % S);
        mbar_wait(bars + 8 * s, (unsigned(c) / S) & 1);
        const uint32_t st = sbase + s * L::STAGE;
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // the producer's cp.async x tile -> wgmma
        asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
        for (int kk = 0; kk < TK / 16; ++kk)  // k16 step kk: slab kk / 4, bytes 32 (kk % 4) .. + 31 of each row
          wgmma_ss<BMM, XT>(acc, desc_sw128(st + (kk / 4) * L::WSL + KS * 64 * 128 + 32 * (kk % 4)),
                            desc_sw128(st + L::W + (kk / 4) * L::XSL + 32 * (kk % 4)));
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
        __syncwarp();
        if (c > 0 && (tid & 31) == 0) mbar_arrive(bars + 8 * (S + int(unsigned(c - 1) % S)));
        if (tma_issuer && c > 0 && c - 1 + S < nch) {  // chunk c - 1's stage, once all consumer warps released it
          const int cn = c - 1 + S;
          mbar_wait(bars + 8 * (S + int(unsigned(cn) % S)), ((unsigned(cn) / S) & 1) ^ 1);
          issue_tma(cn);
        }
        if constexpr (TMA) __syncwarp();  // warp 0 converged again before the next wgmma (.sync.aligned)
      }
    };
    if (k == 0) mainloop(std::integral_constant<int, 0>());
    else mainloop(std::integral_constant<int, 1>());
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#pragma unroll
    for (int i = 0; i < R; ++i) asm volatile("" : "+f"(acc[i]) :: "memory");
    // Epilogue: the accumulators go through shared memory (the stage buffers, free once both consumer warpgroups
    // are past their last wgmma: named barrier 1) as a [BMM][ROWS + 4] float tile, then out to global memory in
    // rows (coalesced). Register i holds weight row 64 k + 16 w + g (+ 8 for i % 4 >= 2) and x row 8 (i / 4) + 2 t
    // (+ 1 for odd i).
    constexpr int P = ROWS + 4;  // padded row: the 4 t-lanes of a store land in different banks
    const int ct = (tid - PROD) & 127, w = ct >> 5, g = (ct & 31) >> 2, t = ct & 3;
    float* tile = reinterpret_cast<float*>(base);
    asm volatile("bar.sync 1, %0;\n" :: "n"(2 * ROWS) : "memory");
#pragma unroll
    for (int i = 0; i < R; ++i)
      tile[(8 * (i >> 2) + 2 * t + (i & 1)) * P + 64 * k + 16 * w + g + 8 * ((i >> 1) & 1)] = acc[i];
    asm volatile("bar.sync 1, %0;\n" :: "n"(2 * ROWS) : "memory");
    const float gs = p.gscale ? __ldg(p.gscale) : 1.f;
    const XT* bias = reinterpret_cast<const XT*>(p.bias);
    XT* out = reinterpret_cast<XT*>(p.out);
    const bool split = gridDim.z > 1;
    for (int e = tid - PROD; e < BMM * ROWS; e += 2 * ROWS) {
      const int m = e / ROWS, nl = e - m * ROWS, mm = m0 + m, nn = n0 + nl;
      if (mm >= M || nn >= N) continue;
      float v = tile[m * P + nl];
      if (split) {
        p.ws[(int64_t(blockIdx.z) * M + mm) * N + nn] = v;
      } else {
        if (p.gscale) v = v * gs;
        if (bias) v = v + to_f32(bias[nn]);
        out[int64_t(mm) * N + nn] = from_f32<XT>(v);
      }
    }
  }
#else
  __trap();  // sm_90a only: the host never launches it elsewhere (tc_supported checks the device)
#endif
}


int tc_bmm(int64_t M) { return M <= 32 ? 32 : M <= 64 ? 64 : M <= 128 ? 128 : 256; }  // x rows per CTA (wgmma N)
int64_t tc_rows(int bmm) { return bmm >= 128 ? TcSmem<128>::ROWS : TcSmem<64>::ROWS; }  // weight rows per CTA
int64_t tc_tk(int bmm) {  // K per stage (a chunk of the split-K plan)
  return bmm == 256 ? TcSmem<256>::TK : bmm == 128 ? TcSmem<128>::TK : bmm == 64 ? TcSmem<64>::TK : TcSmem<32>::TK;
}

// Split count and K chunks per split: the largest power of two S that keeps the CTAs within one wave (one CTA an
// SM) and at least 512 K per split.
void tc_plan(int64_t M, int64_t N, int64_t K, int* S_out, int* per_out) {
  const int bmm = tc_bmm(M);
  const int64_t rows = tc_rows(bmm), tiles = ((N + rows - 1) / rows) * ((M + bmm - 1) / bmm);
  const int64_t tk = tc_tk(bmm);  // 64 or 128: divides 512
  splitk_plan(tiles, K / tk, 512 / tk, S_out, per_out);
}

// The x operand [M, K] (row-major, 16-byte aligned, K % 128 == 0) as a TMA map: boxes of 64 K x BMM rows in the
// 128-byte swizzle the wgmma descriptors read; rows past M are filled with zeros.
template <typename XT>
CUtensorMap tc_xmap(const TcParams& p, int bmm) {
  return tma_map_2d(p.x, std::is_same<XT, __half>::value ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                                          : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
                    p.K, p.M, int64_t(p.K) * sizeof(XT), kSw, bmm, CU_TENSOR_MAP_SWIZZLE_128B, "linear_tc");
}

template <typename XT, int SK, bool HZ, int CODES, int BMM>
void launch_tc_t(const TcParams& p, dim3 grid, cudaStream_t st) {
  using L = TcSmem<BMM>;
  static std::atomic<int> attr[kMaxDevices];
  smem_limit(attr, gemm_tc_kernel<XT, SK, HZ, CODES, BMM>, L::BYTES);
  const CUtensorMap xmap = L::template TMA<CODES> ? tc_xmap<XT>(p, BMM) : CUtensorMap{};
  gemm_tc_kernel<XT, SK, HZ, CODES, BMM><<<grid, L::THREADS, L::BYTES, st>>>(p, xmap);
}

template <typename XT, int SK, bool HZ, int CODES>
void launch_tc_bmm(const TcParams& p, dim3 grid, int bmm, cudaStream_t st) {
  if (bmm == 32) launch_tc_t<XT, SK, HZ, CODES, 32>(p, grid, st);
  else if (bmm == 64) launch_tc_t<XT, SK, HZ, CODES, 64>(p, grid, st);
  else if (bmm == 128) launch_tc_t<XT, SK, HZ, CODES, 128>(p, grid, st);
  else launch_tc_t<XT, SK, HZ, CODES, 256>(p, grid, st);
}

// The instantiated (scale kind, zeros, scales per stage, code kind) combinations: int4 asymmetric (f32 scales,
// zeros, UINT codes) and symmetric (SINT) with G >= 64 or 32; nf4 / bnb_fp4 (f32 absmax, any table); nvfp4 (E4M3,
// G = 16) and mxfp4 (E8M0, G = 32) with the E2M1 table.
template <typename XT>
bool launch_tc_fmt(const TcParams& p, int sk, int codes, dim3 grid, int bmm, cudaStream_t st) {
  const bool hz = p.zeros != nullptr;
  if (sk == SK_F32 && hz && codes == TC_UINT) launch_tc_bmm<XT, SK_F32, true, TC_UINT>(p, grid, bmm, st);
  else if (sk == SK_F32 && !hz && codes == TC_SINT) launch_tc_bmm<XT, SK_F32, false, TC_SINT>(p, grid, bmm, st);
  else if (sk == SK_F32 && !hz && codes == TC_LUT) launch_tc_bmm<XT, SK_F32, false, TC_LUT>(p, grid, bmm, st);
  else if (sk == SK_E4M3 && !hz && codes == TC_LUT) launch_tc_bmm<XT, SK_E4M3, false, TC_LUT>(p, grid, bmm, st);
  else if (sk == SK_E8M0 && !hz && codes == TC_LUT) launch_tc_bmm<XT, SK_E8M0, false, TC_LUT>(p, grid, bmm, st);
  else return false;
  return true;
}

bool tc_shape_ok(const LinearArgs& a) {
  if (a.qk != QK_NIB4 || a.xt == XT_F32 || a.lut == nullptr || a.K % kTcK || a.K > (int64_t(1) << 30)) return false;
  if (a.M <= 0 || a.N <= 0 || a.N > (int64_t(1) << 30) || a.M > (int64_t(1) << 30)) return false;
  if (a.M * a.N > (int64_t(1) << 40)) return false;
  const int64_t G = a.G;
  if (G <= 0 || a.K % G || !(G % kSw == 0 || G == 32 || G == 16)) return false;
  const bool hz = a.zeros != nullptr;
  const int cd = a.codes;
  const bool fmt = (a.sk == SK_F32 && ((hz && cd == TC_UINT) || (!hz && (cd == TC_SINT || cd == TC_LUT)))) ||
                   ((a.sk == SK_E4M3 || a.sk == SK_E8M0) && !hz && cd == TC_LUT);
  const auto al = [](const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15u) == 0; };
  return fmt && al(a.x) && al(a.q);
}

}  // namespace

bool linear_tc_supported(const LinearArgs& a) { return tc_shape_ok(a) && tc_device_ok(); }

int64_t linear_tc_workspace(int64_t M, int64_t N, int64_t K) {
  if (M <= 0 || N <= 0 || K < kTcK) return 0;
  return planned_workspace(M, N, K, tc_plan);
}

void linear_tc(const LinearArgs& a, uintptr_t stream) {
  if (!tc_shape_ok(a)) throw std::invalid_argument("linear_tc: unsupported shape, format or alignment");
  if (!tc_device_ok()) throw std::invalid_argument("linear_tc: needs an sm_90 (Hopper) device");
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  int S, per;
  tc_plan(a.M, a.N, a.K, &S, &per);
  require_splitk_ws(a, S, "linear_tc");
  TcParams p{};
  p.x = a.x; p.q = a.q; p.scales = a.scales; p.zeros = a.zeros; p.gscale = a.gscale; p.lut = a.lut;
  p.bias = a.bias; p.out = a.out; p.ws = a.ws;
  p.M = int(a.M); p.N = int(a.N); p.K = int(a.K); p.G = int(a.G); p.chunks_per_split = per;
  divider(p.G, &p.gmul, &p.gshr);
  p.magic = 0x4b000000u;
  const int bmm = tc_bmm(a.M);
  const int64_t rows = tc_rows(bmm);
  dim3 grid(unsigned((a.N + rows - 1) / rows), unsigned((a.M + bmm - 1) / bmm), unsigned(S));
  const bool ok = a.xt == XT_BF16 ? launch_tc_fmt<__nv_bfloat16>(p, a.sk, a.codes, grid, bmm, st)
                                  : launch_tc_fmt<__half>(p, a.sk, a.codes, grid, bmm, st);
  if (!ok) throw std::invalid_argument("linear_tc: no kernel for this scale kind / group size");
  check_launch("fourbit gemm_tc");
  reduce_splits(a, S, st);
}

}  // namespace fourbit_cuda
