// Small-M 4-bit GEMM (8 < M <= 64): y[M, N] = x[M, K] @ dequant(W)^T (+ bias), on mma.sync m16n8k16 with the
// WEIGHTS as the A operand and x as B, so the MMA's n8 runs over x rows and no MMA column is padding once M fills
// its 8-row blocks (the decode GEMV puts x in A and pads M to 16).
//   - A block is 16 warps (14 or 8 where plan_sm finds those fill the SMs better); warp w owns weight rows
//     n0 + 16 w .. + 16 as two n8 tiles (tile r: rows + 8 r + g). A lane holds 16 bytes (32 codes) of its row in
//     each tile, decoded exactly as in the GEMV (gemv.cu: the per-lane byte-pair table, then (pair - zero) * scale
//     in packed half arithmetic), and those 16 + 16 pairs are the A registers of 8 k16 MMAs directly:
//     {tile 0 pair 2j, tile 1 pair 2j, tile 0 pair 2j + 1, tile 1 pair 2j + 1}.
//     The MMA sums over its 16 k in any order across lanes, so x (B) only has to use the same k order: lane (g, t)
//     reads the same 32 columns of x row 8 b + g as its codes, pairs 2j and 2j + 1 for MMA j.
//   - All warps walk the same 128-column steps. Each step's x tile (MB * 8 rows x 128 columns, 16-byte pieces
//     swizzled so the 8 lanes of an LDS.128 phase hit 8 bank groups) and codes (the block's rows x 64 bytes) are
//     copied by cp.async into a 3-slot ring, two steps ahead, one barrier a step; scales come from global memory
//     one step ahead. The x tile is shared by a block's 256 (224, 128) weight rows, which keeps x's L2 traffic at
//     M * K * 2 bytes per block.
//   - Split-K over blockIdx.y (float32 workspace, the GEMV's fixed-order reduce) when the row blocks would not fill
//     the GPU. Rows past N read row N - 1 (dropped), x rows past M read row M - 1 (their D columns are dropped), x
//     columns past the slice are zero-filled and their codes get scale 0.
// Rounding is the GEMV's: the MMA sees bf16/fp16(bf16/fp16(lut[c] - z) * s), the global scale multiplies the fp32
// sum, so tests/test_cuda_gemv.py's derived bound applies unchanged; with float32 scales and G % 128 == 0 (SA below)
// the MMA sees bf16/fp16(lut[c] - z) and s multiplies each step's float32 sum, one rounding fewer.
// Why it starts at M = 9 (H100 80GB HBM3, 2026-11-27, CUDA graphs, us, GEMV -> this kernel, int4 / nf4 / nvfp4 /
// mxfp4): M = 16 8192^2 37.7 / 30.1 / 34.5 / 30.9 -> 29.4 / 28.3 / 33.8 / 30.7, 28672x8192 119.0 / 108.6 / 124.3 /
// 107.6 -> 94.6 / 88.8 / 111.6 / 99.9, 14336x4096 40.7 / 32.3 / 36.5 / 32.7 -> 28.6 / 27.4 / 34.4 / 30.2, 4096^2
// 14.5 / 13.4 / 15.0 / 13.5 -> 11.8 / 11.5 / 13.3 / 12.2: faster in all 20 cases. M = 9: faster in 14 of 20; mxfp4
// 2-7% slower (8192^2 28.1 -> 30.3). The GEMV pads M to 16 MMA rows and reads x per warp; here 256 rows share x.
// 14-warp blocks (H100 80GB HBM3, 2026-11-28, bench/gpu_sm.py, CUDA graphs, us, two passes, 16-warp baseline in the
// same call; int4 / nf4 / nvfp4 / mxfp4): 28672x8192 M = 16 93.2 / 88.4 / 95.3 / 87.1 -> 89.5 / 87.4 / 89.3 / 85.6,
// M = 48 138.2 / 132.7 / 140.7 / 132.2 -> 134.5 / 125.9 / 130.5 / 126.3; 14336x4096 M = 16 28.0 / 27.1 / 29.1 / 26.4 ->
// 27.5 / 26.8 / 27.5 / 25.9. Not the 12.5% fewer rows an SM: each warp still walks its 16 rows over all of K, and
// much of the loop's time goes with each warp's latency, not with the SM's issue rate. Tried and dropped then: a deeper
// ring (4 / 6 slots, as many as 227 KB holds up to 6): slower in all 40 cases (28672x8192 M = 16 int4 89.9-91.0 ->
// 93.1 / 94.3-95.1 us, 4096^2 M = 16 nvfp4 11.5 -> 12.3 / 13.0), so the copies two steps ahead are not what waits.
// Also tried and dropped (H200, 2026-11-28, bench/probes/m1_ab.py MS=16,48, graph us, builds alternated twice in one
// call; outputs within the test bound): (1) SA for G = 64 float32 scales (nf4, bnb_fp4): each lane takes 8 bytes of
// each of the step's two groups, so MMAs 0-3 and 4-7 are one group each and two chains are scaled in float32. With
// 8-byte cp.async copies: nf4 M = 16 8192^2 27.2 -> 31.6, 28672x8192 82.3 -> 95.3; with the usual 16-byte copies and
// two 8-byte shared loads a tile (swizzled, conflict-free): 4096^2 11.7 -> 11.9, 8192^2 27.0 -> 27.7, 28672x8192
// 82.3 -> 79.3, 4096x14336 24.7 -> 25.5, 14336x4096 26.3 -> 25.5; M = 48 within 3%. (2) The split-K partials summed
// inside the row block's thread-block cluster (hopper.cuh cluster_reduce_tile) instead of the workspace and reduce
// kernel: the 16-warp plans within 1% (probably their clusters of 4-8 one-block SMs did not fit; not checked),
// 14336x4096 (S = 2) M = 48 39.1 -> 38.0; forced 8-warp blocks in clusters were slower at M = 16 (4096^2 11.5 -> 13.9,
// 8192^2 27.9 -> 35.6, 4096x14336 25.6 -> 33.4), equal at M = 48.
// The 64 KB table (nib4.cuh kT64Base) for M <= 16 on 14- and 16-warp blocks (one an SM; the ring fits below it):
// one PRMT a lookup instead of a shift, a LOP3 and the base add; the loop of a step 329 -> 268 SASS instructions
// (bf16 nf4). Measured (H200, 2026-11-28 19:50 UTC, bench/probes/m1_ab.py MS=16,64, graph us, builds alternated
// twice in one call, the second pass; int4 / nf4 / nvfp4 / mxfp4), M = 16: 28672x8192 79.0 / 79.4 / 83.3 / 79.0 ->
// 74.0 / 74.3 / 78.3 / 74.0, 8192^2 26.8 / 26.6 / 28.7 / 26.1 -> 25.9 / 25.9 / 27.7 / 25.5, 14336x4096 25.3 / 25.4 /
// 26.4 / 25.2 -> 24.1 / 24.0 / 25.4 / 23.9, 4096x14336 24.0 / 24.1 / 26.1 / 23.5 -> 23.2 / 23.4 / 25.1 / 23.1,
// 4096^2 11.5 / 11.4 / 12.3 / 11.6 -> 11.3 / 11.3 / 12.1 / 11.5; M = 64 (8-row x blocks, 32 KB table) within 1%.
// Tried in the same call: each step's scales loaded two steps ahead (a third register set) instead of one: within
// 1% at M = 16, up to 1.2% slower at M = 64 (28672x8192 int4 142.7 -> 144.4), so the scale loads are not what waits.
// Per-thread copy and scale sources computed once (common.cuh opaque_*) instead of rebuilt from the thread index each
// step: the loop of a step 268 -> 222 SASS instructions (bf16 nf4, 16 warps, M <= 16), 464 -> 398 (M <= 64); no
// spills (120-127 registers at M <= 64). Measured (H200, 2026-11-28 19:58 UTC, m1_ab.py MS=16,64, graph us, against
// the build above alternated twice in one call, the second pass; int4 / nf4 / nvfp4 / mxfp4): M = 16 28672x8192
// 74.0 / 74.2 / 78.2 / 74.0 -> 72.1 / 72.1 / 76.1 / 70.4, 8192^2 25.7 / 26.1 / 27.6 / 25.3 -> 25.5 / 25.4 / 27.1 /
// 24.6, 14336x4096 23.8 / 24.1 / 25.4 / 23.8 -> 23.2 / 23.5 / 24.9 / 22.9, 4096x14336 23.2 / 23.5 / 25.2 / 23.0 ->
// 22.8 / 23.0 / 24.8 / 22.3, 4096^2 11.3 / 11.3 / 12.0 / 11.5 -> 11.3 / 11.2 / 12.1 / 11.4; M = 64 28672x8192 142.5
// / 139.1 / 146.1 / 140.3 -> 139.0 / 135.0 / 138.6 / 134.0, 8192^2 45.4 / 44.9 / 46.8 / 45.0 -> 43.4 / 42.7 / 44.1 /
// 42.1.
// nvfp4 (G = 16): a run's two E4M3 scales as one 16-bit load (j even: K % 32 == 0; linear_sm_takes asks 2-byte
// aligned scales) and one e4m3x2 conversion (nib4.cuh e4m3_pairs): the bf16 loop 249 -> 231 SASS instructions.
// Measured (H200, 2026-11-28 20:06 UTC, m1_ab.py MS=16, graph us, against the build above alternated twice in one
// call, the second pass), nvfp4 M = 16: 28672x8192 75.6 -> 71.5, 8192^2 26.9 -> 25.0, 14336x4096 24.7 -> 23.5,
// 4096x14336 24.6 -> 23.0, 4096^2 11.7 -> 11.2 (nf4 / mxfp4 in the same call within 0.6%). Converting the two scales
// this way without the paired load had gained nothing (H100, 2026-11-27: nib4.cuh's note before this change).
#include <algorithm>
#include <stdexcept>

#include "api.h"
#include "common.cuh"
#include "nib4.cuh"

namespace fourbit_cuda {
namespace {

constexpr int kSmWarps = 16;              // most warps a block (one block an SM at 128 registers)
constexpr int kSmRows = kSmWarps * 16;    // most weight rows a block
constexpr int kSmStages = 3;              // ring slots: steps i + 1 and i + 2 copy while step i computes
constexpr int kSmMaxM = 64;
constexpr int kSmMinM = 8;               // the GEMV keeps M <= 8 (its M <= 8 kernel needs no padded MMA rows)

struct SmParams {
  const void* x; int M; const uint8_t* q; int N; int K; int G;
  const void* scales; const uint8_t* zeros; const float* gscale; const float* lut;
  const void* bias; void* out; float* ws; int ksl;
  uint32_t gmul; int gshr;  // k / G = umulhi(k, gmul) >> gshr (common.cuh divider)
};

// Shared memory of a block of NW warps for MB 8-row x blocks: the ring (x tile, then codes, a slot), then the 32 KB
// table (T64: the 64 KB table at kT64Base instead, above the ring).
template <int MB, int NW> struct SmLayout {
  static constexpr int X = MB * 8 * 256;    // MB * 8 rows x 128 columns x 2 bytes
  static constexpr int W = NW * 16 * 64;    // 16 NW rows x 128 codes
  static constexpr int SLOT = X + W;
  static constexpr int TABLE = kSmStages * SLOT;
  static constexpr int BYTES = TABLE + 256 * 32 * 4;
  static_assert(BYTES <= 232448, "more than the 227 KB of shared memory a Hopper CTA may use");
  // M <= 16 blocks of 14-16 warps (one an SM) take the 64 KB table at kT64Base (nib4.cuh), the ring below it.
  static constexpr bool T64 = MB == 2 && NW != 8;
  static_assert(!T64 || TABLE + 1024 <= int(kT64Base), "the ring must fit below the 64 KB table");
};

// cp.async of 16 bytes that zero-fills the destination when `valid` is false (src is then not read).
__device__ __forceinline__ void cp_async16_zfill(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(dst), "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}

template <bool G16, bool HZ> struct SmScales {  // one step's raw scales (and zero-point bytes) of the lane's 2 runs
  uint32_t s0[2];        // G16: the run's two E4M3 bytes, one 16-bit load (bytes j, j + 1; j even: K % 32 == 0)
  uint32_t z[HZ ? 2 : 1];  // zero bytes unpacked: a PRMT right after the loads waited on them
};

// SA (float32 scales, G % 128 == 0: one group a step for every lane): the MMAs of a step start from zero and the
// step's sums are scaled in float32 into the accumulators (lane (g, t)'s D rows are its own two weight rows, whose
// scales it loaded), so the decode skips its packed multiply. Why: the decode GEMV's ablation (gemv.cu, round 9)
// priced that multiply above the table load; here it replaces 32 HMUL2 a step by 4 FFMA an 8-row x block. Measured
// (H100 80GB HBM3, 2026-11-28, bench/probes/gemv_abl.cu, kernel us after a flush, int4 g128, two passes): M = 16
// 4096^2 15.2 -> 15.0-15.2, 8192^2 33.4 -> 32.7, 28672x8192 94.6 -> 90.5, 4096x14336 30.1 -> 29.4, 14336x4096
// 31.0 -> 30.5; M = 48 8192^2 45.5 -> 44.6, 28672x8192 136.0 -> 131.0 (the other formats, not SA, within 1%).
template <typename XT, int SK, bool G16, bool HZ, int MB, int NW, bool SA = false>
__global__ void __launch_bounds__(NW * 32, NW == 8 ? 2 : 1) gemm_sm_kernel(SmParams p) {
  static_assert(!SA || SK == SK_F32, "SA: float32 scales");
  pdl_trigger();  // the split-K reduce after it may launch now (it waits for this grid: common.cuh)
  using L = SmLayout<MB, NW>;
  constexpr int T = NW * 32, ROWS = NW * 16;
  extern __shared__ __align__(128) uint8_t sm_dyn[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int M = p.M, N = p.N, K = p.K, G = p.G;
  const int ks = blockIdx.y * p.ksl, ke = min(K, ks + p.ksl);
  const int nst = (ke - ks + 127) >> 7;
  const int ng = K / G;
  const int64_t rowbytes = K / 2;
  const uint32_t sb = smem_u32(sm_dyn);
  // Per-thread sources, fixed for the slice and kept opaque (asm moves) so that the loop only adds the step's offset
  // (the compiler rebuilt them from the thread index every step: ~45 of the step's 268 SASS instructions).
  const int kq = opaque_i32(ks + t * 32);  // the lane's run at step 0: columns kq + 128 i .. + 32
  const uint8_t* qrow[2];                  // row base of the lane's weight row in each tile (clamped)
  int64_t srow[2];                         // its first scale (zero point) index
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int nr = min(int(blockIdx.x) * ROWS + warp * 16 + r * 8 + g, N - 1);
    qrow[r] = opaque_ptr(p.q + (int64_t)nr * rowbytes);
    srow[r] = opaque_i64((int64_t)nr * ng);
  }
  // This lane's codes of tile r sit at slot + X + (16 warp + 8 r + g) * 64 + 16 t (8 lanes of a phase: 128 bytes).
  const uint32_t wlane = opaque_u32(uint32_t(L::X + (warp * 16 + g) * 64 + t * 16));
  // x pieces: piece c = tid + h T is x row m = c / 16 (clamped to M - 1; its D columns are dropped), 8 columns
  // ch = c % 16 of the step, at slot + m * 256 + 16 * (ch ^ ((ch >> 3 & 1) << 1) ^ (m & 1)); threads past MB * 128
  // pieces copy nothing in the last round.
  constexpr int XR = (MB * 128 + T - 1) / T;
  const XT* xrow[XR];
  int xk[XR];  // the piece's column at step 0, ks + 8 ch
  uint32_t xdst[XR];
#pragma unroll
  for (int h = 0; h < XR; ++h) {
    const int c = tid + h * T, m = c >> 4, ch = c & 15;
    xrow[h] = opaque_ptr(reinterpret_cast<const XT*>(p.x) + (int64_t)min(m, M - 1) * K);
    xk[h] = opaque_i32(ks + ch * 8);
    xdst[h] = opaque_u32(uint32_t(m * 256) + uint32_t(ch ^ (((ch >> 3) & 1) << 1) ^ (m & 1)) * 16u);
  }

  // Copy step i (codes, x tile) into ring slot i % 3; one cp.async group.
  auto copy = [&](int i) {
    const uint32_t slot = sb + uint32_t((i % kSmStages) * L::SLOT);
    const int kc = kq + i * 128;
    const int ko = kc < ke ? kc : ks;  // a run past the slice: any valid address (scale 0)
#pragma unroll
    for (int r = 0; r < 2; ++r) cp_async16(slot + wlane + uint32_t(r * 512), qrow[r] + ko / 2);
#pragma unroll
    for (int h = 0; h < XR; ++h) {
      if (MB * 128 % T && tid + h * T >= MB * 128) break;  // the last round (or MB = 2's only one) leaves threads over
      const int kk = xk[h] + i * 128;
      const bool ok = kk < ke;
      cp_async16_zfill(slot + xdst[h], xrow[h] + (ok ? kk : 0), ok);
    }
  };
  auto load = [&](SmScales<G16, HZ>& S, int i) {  // step i's scales and zero points of the lane's 2 runs
    const int k0 = kq + i * 128;
    const bool kv = SA || k0 < ke;  // SA: the step's group, valid for every lane (x is zero past the slice)
    const int kc = SA ? ks + i * 128 : kv ? k0 : ks;
    const uint32_t grp = __umulhi(uint32_t(kc), p.gmul) >> p.gshr;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t j = srow[r] + grp;
      if (G16) S.s0[r] = kv ? uint32_t(__ldg(reinterpret_cast<const uint16_t*>(p.scales) + (j >> 1))) : 0u;
      else S.s0[r] = kv ? ld_scale<SK>(p.scales, j) : 0u;
      if (HZ) S.z[r % (HZ ? 2 : 1)] = __ldg(p.zeros + j);
    }
  };

  copy(0);
  cp_commit();
  if (nst > 1) copy(1);
  cp_commit();
  SmScales<G16, HZ> cur, nxt;
  load(cur, 0);
  if (L::T64) t64_check(sb, uint32_t(L::TABLE));  // the table and, below it, the ring (launch_sm_k)
  const uint32_t tb = L::T64 ? kT64Base : sb + uint32_t(L::TABLE);
  uint32_t* tbl = reinterpret_cast<uint32_t*>(sm_dyn + (tb - sb));
  if (L::T64) build_pair_table<XT, T, 64>(tbl, p.lut);  // published by the first step's barrier
  else build_pair_table<XT, T>(tbl, p.lut);

  float acc[MB][4];
#pragma unroll
  for (int b = 0; b < MB; ++b) acc[b][0] = acc[b][1] = acc[b][2] = acc[b][3] = 0.f;
  // x row 8 b + g, chunk 4 t + i of a slot: + (8 b + g) * 256 + 16 * ((4 t + i) ^ (t & 2) ^ (g & 1)); 8 b keeps
  // the row parity, so (t & 2) ^ (g & 1) is the same XOR for every b and i enters as i << 4.
  const uint32_t xlane = opaque_u32(uint32_t(g * 256 + 16 * ((4 * t) ^ (t & 2) ^ (g & 1))));
  const int mb_used = (M + 7) >> 3;  // x blocks holding rows < M (the rest are skipped: a uniform branch)

  for (int i = 0; i < nst; ++i) {
    if (i + 1 < nst) load(nxt, i + 1);
    cp_wait<1>();      // this thread's copies of step i have landed
    __syncthreads();   // everyone's have; and every warp is done with step i - 1's slot, which step i + 2 refills
    if (i + 2 < nst) copy(i + 2);
    cp_commit();
    const uint32_t slot = sb + uint32_t((i % kSmStages) * L::SLOT);
    uint32_t lb;  // lane << 2 (T64: | kT64Base), after the barrier (volatile asm) so no lookup moves above the first
    asm volatile("mov.b32 %0, %1;\n" : "=r"(lb) : "r"((L::T64 ? kT64Base : 0u) | uint32_t(lane) << 2));
    uint32_t a[2][16];  // decoded pairs of the lane's run in tile r
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      uint4 wv;
      asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(wv.x), "=r"(wv.y), "=r"(wv.z), "=r"(wv.w) : "r"(slot + wlane + uint32_t(r * 512)));
      uint32_t sp[2];  // G16: the pairs of the run's two scales
      if (G16) e4m3_pairs<XT>(cur.s0[r], sp);
      const uint32_t sc0 = SA ? 0u : G16 ? sp[0] : scale_pair<XT, SK>(cur.s0[r]);
      const uint32_t sc1 = SA ? 0u : G16 ? sp[1] : sc0;
      uint32_t zh = 0;
      if (HZ) { const float z = float(cur.z[r % (HZ ? 2 : 1)]); zh = pack2<XT>(z, z); }
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        const uint32_t word = w == 0 ? wv.x : w == 1 ? wv.y : w == 2 ? wv.z : wv.w;
#pragma unroll
        for (int bb = 0; bb < 4; ++bb) {
          const uint32_t addr =
              L::T64 ? t64_addr(word, lb, bb) : (((bb == 0 ? word << 7 : word >> (8 * bb - 7)) & 0x7f80u) | lb) + tb;
          uint32_t v;
          asm("ld.shared.b32 %0, [%1];\n" : "=r"(v) : "r"(addr));
          if (HZ) v = hsub2<XT>(v, zh);
          a[r][4 * w + bb] = SA ? v : hmul2<XT>(v, w < 2 ? sc0 : sc1);
        }
      }
    }
#pragma unroll
    for (int b = 0; b < MB; ++b) {
      if (b >= mb_used) break;
      uint32_t xb[16];  // x row 8 b + g, the lane's 32 columns as 16 pairs
#pragma unroll
      for (int c = 0; c < 4; ++c)
        asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(xb[4 * c]), "=r"(xb[4 * c + 1]), "=r"(xb[4 * c + 2]), "=r"(xb[4 * c + 3])
                     : "r"(slot + ((uint32_t(b * 2048) + xlane) ^ uint32_t(c << 4))));
      if constexpr (SA) {
        float d[4];
        {
          const uint32_t af[4] = {a[0][0], a[1][0], a[0][1], a[1][1]};
          mma16816_z<XT>(d, af, xb[0], xb[1]);
        }
#pragma unroll
        for (int j = 1; j < 8; ++j) {
          const uint32_t af[4] = {a[0][2 * j], a[1][2 * j], a[0][2 * j + 1], a[1][2 * j + 1]};
          mma16816<XT>(d, af, xb[2 * j], xb[2 * j + 1]);
        }
        const float s0 = __uint_as_float(cur.s0[0]), s1 = __uint_as_float(cur.s0[1]);  // tiles 0, 1: D rows g, g + 8
        acc[b][0] = fmaf(s0, d[0], acc[b][0]);
        acc[b][1] = fmaf(s0, d[1], acc[b][1]);
        acc[b][2] = fmaf(s1, d[2], acc[b][2]);
        acc[b][3] = fmaf(s1, d[3], acc[b][3]);
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const uint32_t af[4] = {a[0][2 * j], a[1][2 * j], a[0][2 * j + 1], a[1][2 * j + 1]};
          mma16816<XT>(acc[b], af, xb[2 * j], xb[2 * j + 1]);
        }
      }
    }
    cur = nxt;
  }

  // D of x block b: c0, c1 -> (weight row g, x rows 8 b + 2 t, + 1); c2, c3 -> (weight row g + 8, same x rows).
  const float gs = p.gscale ? __ldg(p.gscale) : 1.f;
  const XT* bias = reinterpret_cast<const XT*>(p.bias);
  XT* out = reinterpret_cast<XT*>(p.out);
  const int nw = int(blockIdx.x) * ROWS + warp * 16 + g;
#pragma unroll
  for (int b = 0; b < MB; ++b) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int m = b * 8 + 2 * t + (e & 1), n = nw + 8 * (e >> 1);
      if (m >= M || n >= N) continue;
      store_result<XT>(acc[b][e], m, n, M, N, p.ws, p.gscale, gs, bias, out);
    }
  }
}

struct SmPlan { int nw, S, ksl; };  // warps a block, split count, slice length (a multiple of 128 columns)

int sm_env_warps() {  // FOURBIT_SM_WARPS (16 / 14 / 8) fixes the block's warps, for experiments; read once
  static const int env = env_choice("FOURBIT_SM_WARPS", {16, 14, 8});
  return env;
}

// For each block size (16, 14 or 8 warps; 8-warp blocks run two an SM): S splits such that ceil(N / rows) blocks
// times S fill the block slots once, each slice keeping >= 4 steps; then the size whose busiest SM does the fewest
// rows x steps, counting at least 128 rows an SM (below that a warp's own latency bounds the loop), the larger block on
// a tie. Measured (H100 80GB HBM3, 2026-11-28, bench/gpu_sm.py, graph us, int4 / nf4 / nvfp4 / mxfp4, the
// FOURBIT_SM_WARPS A/B in one call):
// - 14 warps for N just past a multiple of 132 x 256 rows: 28672 rows are 112 blocks of 256 (20 SMs idle) but 128 of
//   224 (numbers in the header);
// - 8 warps where 16-warp blocks leave SMs idle at any split: N = 1024, K = 4096 (a GQA k / v projection) M = 16
//   8.4 / 7.9 / 9.1 / 8.3 -> 6.6 / 6.3 / 7.3 / 6.6 (bf16 cuBLAS 7.7), M = 48 12.1 / 11.8 / 12.6 / 11.8 -> 9.6 / 9.5 /
//   9.9 / 9.4 (bf16 8.9); on ties they lost or drew: 8192^2 M = 16 29.0 / 28.0 / 30.2 / 27.0 -> 30.4 / 28.9 / 30.3 /
//   27.6, 4096^2 M = 16 11.2 / 10.9 / 11.5 / 10.7 -> 11.3 / 10.8 / 11.2 / 10.6 (M = 48 15.6-16.1 -> 15.0-15.5).
//   4-warp blocks (not built) matched 8 at N = 1024 (6.3-7.3 / 9.2-9.6) and lost everywhere else (4096^2 M = 48
//   19.8-20.4). This planner against the 16 / 14 one (same card and day, one call): N = 4097, K = 4096 M = 16
//   13.4 / 13.1 / 13.8 / 13.0 -> 11.7 / 11.2 / 11.7 / 11.0, M = 48 20.0 / 19.7 / 20.3 / 19.5 -> 17.3 / 16.9 / 17.0 /
//   16.9; N = 2048 M = 16 9.3 / 9.0 / 9.4 / 8.9 -> 7.7 / 7.5 / 8.0 / 7.4, M = 48 12.8 / 12.4 / 12.8 / 12.4 -> 10.9 /
//   10.7 / 11.1 / 10.7; the benchmark's shapes keep their block sizes.
// The split-K pass costs an [S, M, N] float32 round trip.
SmPlan plan_sm(int64_t N, int64_t K) {
  const int64_t kst = (K + 127) / 128, sms = sm_count();
  SmPlan best{0, 0, 0};
  int64_t best_cost = 0;
  for (const int nw : {16, 14, 8}) {
    if (sm_env_warps() && nw != sm_env_warps()) continue;
    const int64_t slots = sms * (nw == 8 ? 2 : 1);
    const int64_t rb = (N + nw * 16 - 1) / (nw * 16);
    const int64_t S = std::max<int64_t>(1, std::min<int64_t>({8, kst / 4, slots / rb}));
    const int64_t chunks = (kst + S - 1) / S, per_sm = (rb * S + sms - 1) / sms;  // blocks on the busiest SM
    const int64_t cost = chunks * std::max<int64_t>(128, per_sm * nw * 16);
    if (best.nw == 0 || cost < best_cost)
      best = SmPlan{nw, int((kst + chunks - 1) / chunks), int(chunks * 128)}, best_cost = cost;
  }
  return best;
}

template <typename XT, int SK, bool G16, bool HZ, int MB, int NW, bool SA>
void launch_sm_k(const SmParams& p, int S, cudaStream_t st) {
  using L = SmLayout<MB, NW>;
  const auto fn = gemm_sm_kernel<XT, SK, G16, HZ, MB, NW, SA>;
  static std::atomic<int> bytes_by_dev[kMaxDevices];  // per instantiation and device
  const int bytes = per_device(bytes_by_dev, [&] {
    const int b = L::T64 ? t64_smem_bytes(dyn_smem_base(fn)) : L::BYTES;
    cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, b);
    return b;
  });
  dim3 grid((p.N + NW * 16 - 1) / (NW * 16), S);
  fn<<<grid, NW * 32, bytes, st>>>(p);
  check_launch("fourbit gemm_sm");
}

template <typename XT, int SK, bool G16, bool HZ, int MB, bool SA>
void launch_sm_mb(const SmParams& p, const SmPlan& pl, cudaStream_t st) {
  if (pl.nw == 14) launch_sm_k<XT, SK, G16, HZ, MB, 14, SA>(p, pl.S, st);
  else if (pl.nw == 8) launch_sm_k<XT, SK, G16, HZ, MB, 8, SA>(p, pl.S, st);
  else launch_sm_k<XT, SK, G16, HZ, MB, 16, SA>(p, pl.S, st);
}

template <typename XT, int SK, bool G16, bool HZ, bool SA = false>
void launch_sm_t(const SmParams& p, const SmPlan& pl, cudaStream_t st) {
  if (p.M <= 16) launch_sm_mb<XT, SK, G16, HZ, 2, SA>(p, pl, st);
  else if (p.M <= 32) launch_sm_mb<XT, SK, G16, HZ, 4, SA>(p, pl, st);
  else launch_sm_mb<XT, SK, G16, HZ, 8, SA>(p, pl, st);
}

template <typename XT>
void launch_sm(const LinearArgs& a, cudaStream_t st) {
  const SmPlan pl = plan_sm(a.N, a.K);
  const int S = pl.S;
  require_splitk_ws(a, S, "linear");
  SmParams p{a.x, int(a.M), a.q, int(a.N), int(a.K), int(a.G), a.scales, a.zeros, a.gscale, a.lut,
             a.bias, a.out, a.ws, pl.ksl, 0, 0};
  divider(int(a.G), &p.gmul, &p.gshr);
  const bool hz = a.zeros != nullptr, g16 = a.G == 16;
  if (a.sk == SK_F32 && a.G % 128 == 0) {  // one group a step: scales after the MMA (SA)
    if (hz) launch_sm_t<XT, SK_F32, false, true, true>(p, pl, st);
    else launch_sm_t<XT, SK_F32, false, false, true>(p, pl, st);
  } else if (a.sk == SK_F32) {
    if (hz) launch_sm_t<XT, SK_F32, false, true>(p, pl, st);
    else launch_sm_t<XT, SK_F32, false, false>(p, pl, st);
  } else if (a.sk == SK_E4M3) {
    if (g16) launch_sm_t<XT, SK_E4M3, true, false>(p, pl, st);
    else launch_sm_t<XT, SK_E4M3, false, false>(p, pl, st);
  } else {
    launch_sm_t<XT, SK_E8M0, false, false>(p, pl, st);
  }
  if (S > 1) launch_splitk_reduce<XT>(a.ws, S, int(a.M), int(a.N), a.gscale, a.bias, a.out, st);
}

}  // namespace

bool linear_sm_takes(const LinearArgs& a) {
  return a.M > kSmMinM && a.M <= kSmMaxM && a.xt != XT_F32 && a.qk == QK_NIB4 && a.lut != nullptr && a.K % 32 == 0 &&
         (a.G == 16 || a.G % 32 == 0) && nib4_fast(a.qk, a.sk, a.G, a.zeros != nullptr) &&
         a.N < (int64_t(1) << 31) - kSmRows && a.K <= (int64_t(1) << 30) &&
         (reinterpret_cast<uintptr_t>(a.x) & 15u) == 0 && (reinterpret_cast<uintptr_t>(a.q) & 15u) == 0 &&
         (a.G != 16 || (reinterpret_cast<uintptr_t>(a.scales) & 1u) == 0);  // G16: 16-bit scale loads
}

int64_t linear_sm_workspace(int64_t M, int64_t N, int64_t K) {
  if (M <= kSmMinM || M > kSmMaxM || N <= 0 || K <= 0) return 0;
  const int S = plan_sm(N, K).S;
  return S > 1 ? int64_t(S) * M * N : 0;
}

void linear_sm(const LinearArgs& a, uintptr_t stream) {
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  if (a.xt == XT_BF16) launch_sm<__nv_bfloat16>(a, st);
  else launch_sm<__half>(a, st);
}

}  // namespace fourbit_cuda
